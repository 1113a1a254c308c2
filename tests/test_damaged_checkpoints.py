"""An unreadable latest checkpoint is named and the previous one used;
none readable is one line (issue #14, finding 3: a truncated data file
ended the rerun in `IndexError: Read less bytes than requested`)."""

from __future__ import annotations

import logging

import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits

from easymatch.config import load_pipeline_config
from easymatch.errors import EasyMatchError
from easymatch.training.loop import train_and_evaluate


def train(data, model_dir, num_steps: int, **extra) -> None:
    """The demo config for `num_steps`, saving every 4, no evaluation."""
    edits = demo_edits(
        data,
        model_dir,
        **{
            "train_config.num_steps": num_steps,
            "train_config.save_checkpoints_steps": 4,
            "eval_input_path": "",
            **extra,
        },
    )
    train_and_evaluate(load_pipeline_config(str(DEMO_CONFIG), edits))


def truncate(prefix) -> None:
    data = prefix.parent / f"{prefix.name}.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])


@pytest.mark.slow
def test_truncated_latest_falls_back_to_the_previous(
    taobao_data, tmp_path, caplog
):
    model_dir = tmp_path / "m"
    train(taobao_data, model_dir, 8)
    truncate(model_dir / "model.ckpt-8")
    with caplog.at_level(logging.WARNING, logger="easymatch"):
        train(taobao_data, model_dir, 10)
    assert (
        f"{model_dir / 'model.ckpt-8'}: unreadable (Read less bytes than "
        f"requested); using {model_dir / 'model.ckpt-4'}" in caplog.text
    )
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-10")
    # The damaged step was trained again and saved whole.
    reader = tf.train.load_checkpoint(str(model_dir / "model.ckpt-8"))
    for name in reader.get_variable_to_shape_map():
        reader.get_tensor(name)

    for step in (4, 8, 10):
        truncate(model_dir / f"model.ckpt-{step}")
    with pytest.raises(EasyMatchError) as info:
        train(taobao_data, model_dir, 12)
    message = str(info.value)
    assert message.startswith(f"{model_dir}: no readable checkpoint (")
    assert "\n" not in message
