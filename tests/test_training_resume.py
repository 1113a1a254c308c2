"""A resumed run continues exactly where the checkpoint left off."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits

from easymatch.config import load_pipeline_config
from easymatch.training.loop import train_and_evaluate


def train(data, model_dir, num_steps: int) -> None:
    config = load_pipeline_config(
        str(DEMO_CONFIG),
        demo_edits(
            data,
            model_dir,
            **{
                "train_config.num_steps": num_steps,
                "train_config.save_checkpoints_steps": 4,
                "data_config.shuffle": False,
                "eval_input_path": "",
            },
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHON_RANDOM_SEED", "3")
        train_and_evaluate(config)


def variables(model_dir) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(model_dir))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("model/") or "optimizer" in name
    }


@pytest.mark.slow
def test_interrupted_and_straight_runs_end_identical(taobao_data, tmp_path):
    train(taobao_data, tmp_path / "straight", 10)
    train(taobao_data, tmp_path / "resumed", 4)
    train(taobao_data, tmp_path / "resumed", 10)
    straight = variables(tmp_path / "straight")
    resumed = variables(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert any("EmbeddingTables/v_user_id_emb" in name for name in straight)
    for name in straight:
        np.testing.assert_allclose(
            resumed[name], straight[name], rtol=1e-5, atol=1e-6, err_msg=name
        )
