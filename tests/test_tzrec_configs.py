"""Every TorchEasyRec DSSM config, end to end (issue 13).

Each of the nine configs in ROOT.parent/"shared"/"tzrec_configs" (copies of
TorchEasyRec's files, never copied into this repository; a missing one
fails) goes: load unchanged (the six non-ODPS ones load, the three ODPS
ones are refused by name for OdpsDataset) → tools/create_mock_data.py →
train_eval (2 steps) → export → both towers loaded and run by a process
that imports only TensorFlow and pyarrow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli

from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT.parent / "shared" / "tzrec_configs"
ODPS = {
    "examples_dssm_taobao",
    "examples_dssm_v2_taobao",
    "benchmark_configs_taobao_dssm_taobao",
}
NAMES = sorted(
    [
        *ODPS,
        "tests_configs_dssm_mock",
        "tests_configs_dssm_fg_mock",
        "tests_configs_dssm_fg_hard_negative_mock",
        "tests_configs_dssm_v2_fg_mock",
        "tests_configs_dssm_v2_mlpemb_fg_mock",
        "tests_configs_dssm_variational_dropout_mock",
    ]
)

# Runs without easymatch: loads a tower, feeds it rows of the eval data.
TF_ONLY = """
import json, sys
import pyarrow.parquet as pq
import tensorflow as tf
assert "easymatch" not in sys.modules
rows = pq.read_table(sys.argv[2]).slice(0, 4)
out = {}
for side in ("user", "item"):
    tower = tf.saved_model.load(f"{sys.argv[1]}/{side}")
    serve = tower.signatures["serving_default"]
    inputs = {}
    for name, spec in serve.structured_input_signature[1].items():
        values = rows.column(name).to_pylist()
        if spec.dtype == tf.string:
            values = ["" if v is None else str(v) for v in values]
        inputs[name] = tf.constant(values, dtype=spec.dtype)
    (emb,) = serve(**inputs).values()
    out[side] = [list(emb.shape), bool(tf.reduce_all(tf.math.is_finite(emb)))]
assert "easymatch" not in sys.modules
print(json.dumps(out))
"""


def test_all_nine_configs_are_here() -> None:
    found = sorted(p.stem for p in CONFIGS.glob("*.config"))
    assert found == NAMES, f"{CONFIGS}: expected TorchEasyRec's nine configs"


@pytest.mark.parametrize("name", NAMES)
def test_config_loads_unchanged_or_is_refused_for_odps(name: str) -> None:
    path = CONFIGS / f"{name}.config"
    if name not in ODPS:
        load_pipeline_config(str(path))
        return
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(str(path))
    assert str(info.value) == (
        f"{path}:25: data_config.dataset_type: OdpsDataset is not "
        "supported; use ParquetDataset or CsvDataset"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_mock_data_train_eval_export_serve(tmp_path: Path, name: str) -> None:
    path = CONFIGS / f"{name}.config"
    assert path.exists(), f"{path} is missing"
    data = tmp_path / "data"
    created = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "create_mock_data.py"),
            "--pipeline_config_path",
            str(path),
            "--output_dir",
            str(data),
            "--num_rows",
            "256",
            "--num_steps",
            "2",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert created.returncode == 0, created.stderr
    trained = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(data / "pipeline.config"),
        "--edit_config_json",
        '{"eval_config.log_step_count_steps": 1}',
        timeout=1800,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "step 2/2" in trained.stderr
    assert "eval step 1" in trained.stderr  # eval_config.log_step_count_steps
    results = (data / "model" / "train_eval_result_v2.txt").read_text()
    last = json.loads(results.splitlines()[-1])
    assert last["global_step"] == 2
    assert {"recall@1", "recall@5", "softmax_cross_entropy"} <= set(last)
    exported = run_cli(
        "easymatch.export",
        "--pipeline_config_path",
        str(data / "model" / "pipeline.config"),
        "--export_dir",
        str(tmp_path / "export"),
        timeout=1800,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    served = subprocess.run(
        [
            sys.executable,
            "-c",
            TF_ONLY,
            str(tmp_path / "export"),
            str(data / "eval.parquet"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert served.returncode == 0, served.stderr[-3000:]
    out = json.loads(served.stdout.strip().splitlines()[-1])
    dim = 32 if name.startswith("benchmark") else 64  # output_dim
    assert out == {"user": [[4, dim], True], "item": [[4, dim], True]}
