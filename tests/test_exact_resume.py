"""A run interrupted at several steps ends bitwise equal to an
uninterrupted one, with dropout, VariationalDropout, shuffling, a sampler
(mixed negatives) and logQ on (issue #14, finding 1: dropout's RNG state
was not in the checkpoint; resumed weights differed by up to 0.31).
Without PYTHON_RANDOM_SEED: the uninterrupted run draws its run seed, and
the interrupted one is given it by its record in model_dir."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from test_negatives_pipeline import sample_path, sampler_edits

from easymatch.config import load_pipeline_config
from easymatch.training.loop import train_and_evaluate
from easymatch.training.run_seed import SEED_ENV, SEED_FILE

RANDOM = {
    "model_config.dssm.user_tower.mlp.dropout_ratio": [0.5],
    "model_config.dssm.item_tower.mlp.dropout_ratio": [0.5],
    "model_config.variational_dropout.regularization_lambda": 0.01,
    "train_config.save_checkpoints_steps": 4,
    "data_config.shuffle": True,
    "eval_input_path": "",
}


def train(data, model_dir, num_steps: int) -> None:
    edits = sampler_edits(
        "dssm_mixed_negatives",
        data,
        model_dir,
        **RANDOM,
        **{"train_config.num_steps": num_steps},
    )
    config = load_pipeline_config(sample_path("dssm_mixed_negatives"), edits)
    assert config.model_config.dssm.logq_correction
    train_and_evaluate(config)


def checkpoint_tensors(model_dir) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(model_dir))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "save_counter" not in name and "_CHECKPOINTABLE" not in name
    }


@pytest.mark.slow
def test_interrupted_runs_end_bitwise_equal(taobao_data, tmp_path, monkeypatch):
    monkeypatch.delenv(SEED_ENV, raising=False)
    train(taobao_data, tmp_path / "straight", 10)
    record = json.loads((tmp_path / "straight" / SEED_FILE).read_text())
    assert record["source"] == "drawn"
    (tmp_path / "resumed").mkdir()
    shutil.copy(tmp_path / "straight" / SEED_FILE, tmp_path / "resumed")
    for steps in (3, 7, 10):
        train(taobao_data, tmp_path / "resumed", steps)
    straight = checkpoint_tensors(tmp_path / "straight")
    resumed = checkpoint_tensors(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    for name in straight:
        np.testing.assert_array_equal(resumed[name], straight[name], name)
    assert any("/seed_0/" in name for name in straight)
