"""Every sampler kind trains end to end; a resumed run matches a straight one.

The four sample configs (NegativeSampler with easymatch's mixed negatives,
logQ and accidental hits; NegativeSamplerV2; both hard samplers) run
train_eval as separate processes at once, on the tiny fixture data.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from test_negatives_pipeline import (
    OPTIONS,
    SAMPLER_CONFIGS,
    sample_path,
    sampler_edits,
)

from easymatch.config import load_pipeline_config
from easymatch.training.loop import train_and_evaluate

SHORT = {
    "train_config.num_steps": 3,
    "train_config.save_checkpoints_steps": 3,
    "train_config.log_step_count_steps": 3,
    "eval_config.num_steps": 2,
}


# Four train_eval processes at once: over a minute on 2 cores.
@pytest.mark.slow
def test_each_sampler_kind_trains_and_evaluates(taobao_data, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    runs = {}
    for name in SAMPLER_CONFIGS:
        edits = sampler_edits(name, taobao_data, tmp_path / name, **SHORT)
        command = [sys.executable, "-m", "easymatch.train_eval"]
        command += ["--pipeline_config_path", sample_path(name)]
        runs[name] = subprocess.Popen(
            [*command, "--edit_config_json", edits],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    for name, process in runs.items():
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {stderr}"
        results = (tmp_path / name / "train_eval_result_v2.txt").read_text()
        [result] = [json.loads(line) for line in results.splitlines()]
        assert result["global_step"] == 3
        metrics = {"softmax_cross_entropy", "recall@1", "recall@5"}
        assert metrics <= set(result), name
        assert all(math.isfinite(result[key]) for key in metrics), result


def train(data, model_dir, num_steps: int) -> None:
    name = "dssm_hard_negative_sampler_v2"
    edits = {
        **OPTIONS,
        # The streaming estimate's state is checkpointed and must resume.
        "model_config.dssm.candidate_probability": {"streaming": {}},
        "train_config.num_steps": num_steps,
        "train_config.save_checkpoints_steps": 3,
        "eval_input_path": "",
    }
    config = load_pipeline_config(
        sample_path(name), sampler_edits(name, data, model_dir, **edits)
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHON_RANDOM_SEED", "3")
        train_and_evaluate(config)


@pytest.mark.slow
def test_resumed_run_with_a_sampler_ends_identical(taobao_data, tmp_path):
    # Hard negatives, mixed negatives, logQ from the sampler and from the
    # streaming estimate, accidental hits: all of it resumes.
    train(taobao_data, tmp_path / "straight", 6)
    train(taobao_data, tmp_path / "resumed", 3)
    train(taobao_data, tmp_path / "resumed", 6)
    straight = tf.train.load_checkpoint(str(tmp_path / "straight"))
    resumed = tf.train.load_checkpoint(str(tmp_path / "resumed"))
    names = sorted(straight.get_variable_to_shape_map())
    assert names == sorted(resumed.get_variable_to_shape_map())
    estimator = [n for n in names if "FrequencyEstimator/v_step" in n]
    assert len(estimator) == 1 and straight.get_tensor(estimator[0]) == 6
    for name in names:
        if name.startswith("model/") or "optimizer" in name:
            np.testing.assert_allclose(
                resumed.get_tensor(name),
                straight.get_tensor(name),
                rtol=1e-5,
                atol=1e-6,
                err_msg=name,
            )
