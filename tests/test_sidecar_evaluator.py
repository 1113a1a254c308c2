"""The evaluator task for a resumed run, and checkpoints that
keep_checkpoint_max deleted before it got to them: real train_eval
processes (a one-worker chief and the evaluator) on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits

from easymatch.launch import free_port
from easymatch.training import sidecar_evaluator

SKIPPED = "checkpoint deleted by keep_checkpoint_max before evaluation"


def _command(data, model_dir, num_steps: int) -> list[str]:
    edits = demo_edits(
        data,
        model_dir,
        **{
            "train_config.num_steps": num_steps,
            "train_config.keep_checkpoint_max": 1,
        },
    )
    return [sys.executable, "-m", "easymatch.train_eval"] + [
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    ]


def _env(jobs: dict, task: str) -> dict:
    tf_config = {"cluster": jobs, "task": {"type": task, "index": 0}}
    return dict(
        os.environ, TF_CONFIG=json.dumps(tf_config), TF_CPP_MIN_LOG_LEVEL="3"
    )


def _chief(data, model_dir, num_steps: int, jobs: dict):
    return subprocess.run(
        _command(data, model_dir, num_steps),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=_env(jobs, "worker"),
    )


def test_a_checkpoint_being_deleted_is_gone(tmp_path):
    # TF deletes a checkpoint's data files before its index: a restore
    # that failed then is a deletion, not a damaged checkpoint.
    path = str(tmp_path / "model.ckpt-5")
    tf.train.Checkpoint(v=tf.Variable([1.0, 2.0])).write(path)
    assert not sidecar_evaluator._gone(path)
    for data in tmp_path.glob("model.ckpt-5.data-*"):
        data.unlink()
    assert sidecar_evaluator._gone(path)
    (tmp_path / "model.ckpt-5.index").unlink()
    assert sidecar_evaluator._gone(path)


@pytest.mark.slow
def test_resumed_run_evaluator_reports_deleted_checkpoints(
    taobao_data, tmp_path
):
    model_dir = tmp_path / "model"
    jobs = {
        "worker": [f"127.0.0.1:{free_port()}"],
        "evaluator": [f"127.0.0.1:{free_port()}"],
    }
    # Run 1, its evaluator never started: checkpoints of steps 5, 10 and
    # 12, only the last one kept, marked final.
    result = _chief(taobao_data, model_dir, 12, jobs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (model_dir / "saved_steps.txt").read_text().split() == [
        "5",
        "10",
        "12",
    ]
    done = json.loads((model_dir / "training_done.json").read_text())
    assert done == {"global_step": 12}
    assert [p.name for p in model_dir.glob("model.ckpt-*.index")] == [
        "model.ckpt-12.index"
    ]
    # Run 2 resumes to step 15; its evaluator starts first, while run 1's
    # mark is still there.
    log_path = tmp_path / "evaluator.log"
    with open(log_path, "w") as log:
        evaluator = subprocess.Popen(
            _command(taobao_data, model_dir, 15),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=_env(jobs, "evaluator"),
        )
    try:
        deadline = time.monotonic() + 600
        while "eval at step 12" not in log_path.read_text():
            assert evaluator.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(1)
        # Three of its polls later, run 1's mark has not ended it.
        time.sleep(6)
        assert evaluator.poll() is None, log_path.read_text()[-3000:]
        result = _chief(taobao_data, model_dir, 15, jobs)
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"resuming from {model_dir}/model.ckpt-12" in result.stderr
        assert evaluator.wait(timeout=600) == 0, log_path.read_text()[-3000:]
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
            evaluator.wait()
    log = log_path.read_text()
    # It evaluated the resumed run's final checkpoint, and recorded the
    # two that no evaluator got to as skipped, in order.
    assert "eval at step 15" in log
    records = [
        json.loads(line)
        for line in (model_dir / "train_eval_result_v2.txt")
        .read_text()
        .splitlines()
    ]
    assert [(r["global_step"], r.get("skipped")) for r in records] == [
        (5, SKIPPED),
        (10, SKIPPED),
        (12, None),
        (15, None),
    ]
    assert "recall@1" in records[-1]
    for step in (5, 10):
        assert f"step {step}: {SKIPPED}; not evaluated" in log
    assert f"evaluator: done at step 15; not evaluated ({SKIPPED}): 5, 10" in (
        log
    )
