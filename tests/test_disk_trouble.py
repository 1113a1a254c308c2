"""A full or read-only model_dir / export_dir ends in one line naming it,
and leaves no partial checkpoint or export (issue #14, item 9).

"Full" is real: the CLI runs under RLIMIT_FSIZE, so its first large write
fails with EFBIG as it would with ENOSPC. A read-only file system cannot
be made without mounting (and root writes through file modes), so the
read-only case checks the translation of the errors that the OS and TF
raise there, with the texts TF 2.20 produces.
"""

from __future__ import annotations

import errno
import os
import resource
import subprocess
import sys

import pytest
from conftest import DEMO_CONFIG, ROOT, demo_edits

from easymatch.errors import DiskError, disk_error

LIMIT = 64 * 1024  # above pipeline.config, below any checkpoint


def _run_with_small_files(module: str, *args: str):
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        preexec_fn=limit,
    )


@pytest.mark.slow
def test_full_model_dir_and_export_dir(taobao_data, tmp_path):
    model_dir = tmp_path / "m"
    config = ["--pipeline_config_path", str(DEMO_CONFIG)]
    edits = demo_edits(taobao_data, model_dir)
    result = _run_with_small_files(
        "easymatch.train_eval", *config, "--edit_config_json", edits
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"easymatch: error: {model_dir}: File too large"
    )
    assert not list(model_dir.glob("checkpoint"))
    assert not list(model_dir.glob("*.index"))

    # Train for real, then export into a "full" export_dir.
    done = subprocess.run(
        [sys.executable, "-m", "easymatch.train_eval", *config]
        + ["--edit_config_json", edits],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    export_dir = tmp_path / "exports" / "e"
    result = _run_with_small_files(
        "easymatch.export",
        *config,
        "--edit_config_json",
        edits,
        "--export_dir",
        str(export_dir),
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"easymatch: error: {export_dir}: File too large"
    )
    assert os.listdir(tmp_path / "exports") == []


@pytest.mark.parametrize(
    ("text", "path"),
    [
        (
            "{{function_node __wrapped__SaveV2_dtypes_3_device_/job:localhost"
            "/replica:0/task:0/device:CPU:0}} /m/model.ckpt-5_temp; "
            "Read-only file system [Op:SaveV2]",
            "/m",
        ),
        ("/x/e.tmp-41/user; Read-only file system", "/x/e"),
        (
            "/x/e.tmp-41/user/variables/variables_temp/part-00000-of-00001"
            ".data-00000-of-00001.tempstate1427; No space left on device",
            "/x/e",
        ),
    ],
)
def test_tf_write_errors_name_the_chosen_directory(text, path):
    error = disk_error(RuntimeError(text))
    assert isinstance(error, DiskError)
    assert str(error).startswith(f"{path}: ")


def test_os_write_errors_name_their_path():
    error = OSError(errno.EROFS, "Read-only file system", "/m/pipeline.config")
    assert str(disk_error(error)) == "/m/pipeline.config: Read-only file system"
    assert disk_error(OSError(errno.ENOENT, "No such file", "/m")) is None
    assert disk_error(RuntimeError("Incompatible shapes")) is None
