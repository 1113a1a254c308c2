"""One training run per model_dir (issue #14, finding 2)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import DEMO_CONFIG, ROOT, demo_edits, run_cli

from easymatch.errors import EasyMatchError
from easymatch.training.model_dir_lock import LOCK_FILE, ModelDirLock


def test_a_second_holder_fails_naming_the_first(tmp_path):
    with ModelDirLock(str(tmp_path)):
        with pytest.raises(EasyMatchError) as info:
            ModelDirLock(str(tmp_path)).acquire()
        assert str(info.value).startswith(
            f"{tmp_path}: in use by another training run (pid {os.getpid()} "
            f"on host {socket.gethostname()}, started "
        )
    assert not (tmp_path / LOCK_FILE).exists()
    with ModelDirLock(str(tmp_path)):  # released: free again
        pass


def _lock_holder(path) -> dict:
    try:
        return json.loads((path / LOCK_FILE).read_text() or "{}")
    except (FileNotFoundError, ValueError):
        return {}


@pytest.mark.slow
def test_second_train_eval_fails_at_once_and_a_dead_holder_is_replaced(
    taobao_data, tmp_path
):
    model_dir = tmp_path / "m"
    args = [
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(taobao_data, model_dir),
    ]
    long_run = demo_edits(
        taobao_data, model_dir, **{"train_config.num_steps": 10**6}
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "easymatch.train_eval", *args[:3], long_run],
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while _lock_holder(model_dir).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.5)
        second = run_cli("easymatch.train_eval", *args)
        assert second.returncode == 2, second.stderr
        last_line = second.stderr.strip().splitlines()[-1]
        assert last_line.startswith(
            f"easymatch: error: {model_dir}: in use by another training "
            f"run (pid {first.pid} on host {socket.gethostname()}, started "
        )
        assert first.poll() is None
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # The killed run's lock file stays behind, naming it.
    assert _lock_holder(model_dir)["pid"] == first.pid
    rerun = run_cli("easymatch.train_eval", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert (
        f"{model_dir / LOCK_FILE}: taking over the lock of a run that ended "
        f"without releasing it (pid {first.pid} " in rerun.stderr
    )
    assert not (model_dir / LOCK_FILE).exists()
