"""train_eval and eval CLIs end to end on tiny generated data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits, run_cli


def read_results(model_dir):
    path = model_dir / "train_eval_result_v2.txt"
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_train_eval_then_eval_write_results(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = demo_edits(taobao_data, model_dir)
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    )
    assert result.returncode == 0, result.stderr
    assert "step 10/12" in result.stderr
    # Evaluated after each checkpoint (5, 10) and at the end (12).
    results = read_results(model_dir)
    assert [r["global_step"] for r in results] == [5, 10, 12]
    assert set(results[-1]) == {
        "global_step",
        "softmax_cross_entropy",
        "recall@1",
        "recall@5",
        "recall@10",
    }
    assert list(results[-1]) == sorted(results[-1])
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-12")
    saved = (model_dir / "pipeline.config").read_text()
    assert "num_steps: 12" in saved
    assert list((model_dir / "train").glob("events.out.tfevents.*"))

    result = run_cli(
        "easymatch.eval",
        "--pipeline_config_path",
        str(model_dir / "pipeline.config"),
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((model_dir / "eval_result.txt").read_text())
    assert evaluated["global_step"] == 12
    # The same checkpoint and eval data give the same numbers.
    for key in ("softmax_cross_entropy", "recall@5"):
        assert abs(evaluated[key] - results[-1][key]) < 1e-5


@pytest.mark.slow
def test_rerun_resumes_from_latest_checkpoint(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    config = str(DEMO_CONFIG)
    first = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        config,
        "--edit_config_json",
        demo_edits(taobao_data, model_dir, **{"train_config.num_steps": 5}),
    )
    assert first.returncode == 0, first.stderr
    second = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        config,
        "--edit_config_json",
        demo_edits(taobao_data, model_dir, **{"train_config.num_steps": 10}),
    )
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stderr
    assert "step 5/10" not in second.stderr
    assert [r["global_step"] for r in read_results(model_dir)] == [5, 10]


@pytest.mark.slow
def test_kill_9_then_rerun_resumes(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    args = [
        sys.executable,
        "-m",
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(
            taobao_data,
            model_dir,
            **{
                "train_config.num_steps": 100000,
                "train_config.save_checkpoints_steps": 3,
                "eval_config.num_steps": 1,
            },
        ),
    ]
    process = subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(str(model_dir))
        if latest and int(latest.rsplit("-", 1)[1]) >= 6:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = int(tf.train.latest_checkpoint(str(model_dir)).rsplit("-")[-1])
    assert killed_at >= 6

    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        demo_edits(
            taobao_data,
            model_dir,
            **{"train_config.num_steps": killed_at + 4},
        ),
    )
    assert result.returncode == 0, result.stderr
    assert f"resuming from {model_dir}/model.ckpt-{killed_at}" in result.stderr
    latest = tf.train.latest_checkpoint(str(model_dir))
    assert latest.endswith(f"ckpt-{killed_at + 4}")


def test_bad_config_is_one_line_error(tmp_path):
    config = tmp_path / "bad.config"
    config.write_text(
        DEMO_CONFIG.read_text().replace("batch_size: 256", "batch_sizee: 1")
    )
    result = run_cli(
        "easymatch.train_eval", "--pipeline_config_path", str(config)
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "bad.config:" in lines[0] and "batch_sizee" in lines[0]


def test_missing_input_file_is_one_line_error(tmp_path):
    edits = json.dumps(
        {
            "train_input_path": str(tmp_path / "nope.parquet"),
            "model_dir": str(tmp_path / "model"),
        }
    )
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "nope.parquet" in lines[0]
