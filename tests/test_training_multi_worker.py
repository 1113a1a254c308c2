"""MultiWorkerMirroredStrategy end to end: worker subprocesses on loopback
with their own TF_CONFIG, compared with one process; easymatch.launch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits, run_cli

from easymatch.launch import free_port

pytestmark = pytest.mark.slow

# Trains like train_eval and dumps the final weights, so that the test can
# compare what each worker holds.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from easymatch.config import load_pipeline_config
    from easymatch.training.cluster import choose_mode, read_tf_config
    from easymatch.training.hooks import Hook
    from easymatch.training.loop import train_and_evaluate
    from easymatch.training.strategies import make_strategy

    class SaveWeights(Hook):
        def on_train_end(self, state, step):
            weights = [w.numpy() for w in state.model.weights]
            np.savez(sys.argv[3], *weights)

    cluster = read_tf_config()
    strategy = make_strategy(cluster, choose_mode(cluster))
    config = load_pipeline_config(sys.argv[1], sys.argv[2])
    metrics = train_and_evaluate(
        config, strategy=strategy, extra_hooks=[SaveWeights()]
    )
    print(json.dumps(metrics))
    """
)


def _edits(data, model_dir, **extra) -> str:
    options = {
        "train_config.num_steps": 10,
        "train_config.save_checkpoints_steps": 10,
        "train_config.log_step_count_steps": 10,
        "data_config.eval_batch_size": 64,
        "eval_config.num_steps": 0,
    }
    options.update(extra)
    return demo_edits(data, model_dir, **options)


def _start(edits: str, weights, tf_config: str | None) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(DEMO_CONFIG),
            edits,
            str(weights),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )


def _finish(process: subprocess.Popen) -> dict:
    try:
        out, err = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _workers(edits: str, tmp_path, count: int = 2) -> list:
    peers = [f"127.0.0.1:{free_port()}" for _ in range(count)]
    processes = [
        _start(
            edits,
            tmp_path / f"w{index}.npz",
            json.dumps(
                {
                    "cluster": {"worker": peers},
                    "task": {"type": "worker", "index": index},
                }
            ),
        )
        for index in range(count)
    ]
    try:
        return [_finish(p) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _weights(path) -> list[np.ndarray]:
    with np.load(path) as saved:
        return [saved[name] for name in saved.files]


def test_two_workers_end_identical(taobao_data, tmp_path):
    model_dir = tmp_path / "cluster"
    metrics = _workers(_edits(taobao_data, model_dir), tmp_path)
    first, second = (_weights(tmp_path / f"w{i}.npz") for i in range(2))
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # Only the chief wrote into model_dir; both evaluated the same model.
    assert metrics[0] == metrics[1]
    results = (model_dir / "train_eval_result_v2.txt").read_text()
    assert [json.loads(r)["global_step"] for r in results.splitlines()] == [10]


def test_launch_trains_evaluates_and_exports(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    result = run_cli(
        "easymatch.launch",
        "--num_workers",
        "2",
        "--",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(
            taobao_data,
            model_dir,
            **{"export_config.exporter_type": "latest"},
        ),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = sorted(p.name for p in (model_dir / "logs").iterdir())
    assert logs == ["worker_0.log", "worker_1.log"]
    results = (model_dir / "train_eval_result_v2.txt").read_text()
    assert [json.loads(r)["global_step"] for r in results.splitlines()] == [
        5,
        10,
        12,
    ]
    steps = sorted(
        int(p.name.split("-")[1].split(".")[0])
        for p in model_dir.glob("model.ckpt-*.index")
    )
    assert steps == [5, 10, 12]
    # The chief exported ordinary tower SavedModels, which load alone.
    export = model_dir / "export" / "latest"
    newest = max(p for p in export.iterdir() if p.name.isdigit())
    for side in ("user", "item"):
        loaded = tf.saved_model.load(str(newest / side))
        assert "serving_default" in loaded.signatures


def test_launch_with_an_evaluator_task(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    result = run_cli(
        "easymatch.launch",
        "--num_workers",
        "2",
        "--evaluator",
        "--",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(
            taobao_data,
            model_dir,
            **{"export_config.exporter_type": "latest"},
        ),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = model_dir / "logs"
    assert sorted(p.name for p in logs.iterdir()) == [
        "evaluator_0.log",
        "worker_0.log",
        "worker_1.log",
    ]
    # The evaluator evaluated every checkpoint and recorded it; the
    # chief did not evaluate.
    results = (model_dir / "train_eval_result_v2.txt").read_text()
    assert [json.loads(r)["global_step"] for r in results.splitlines()] == [
        5,
        10,
        12,
    ]
    assert "eval at step 12" in (logs / "evaluator_0.log").read_text()
    assert "eval at step" not in (logs / "worker_0.log").read_text()
    # It exported after its evaluations, as the chief would have.
    export = model_dir / "export" / "latest"
    newest = max(p for p in export.iterdir() if p.name.isdigit())
    loaded = tf.saved_model.load(str(newest / "user"))
    assert "serving_default" in loaded.signatures
