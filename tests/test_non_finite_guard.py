"""A non-finite loss or gradient stops training with one line, before a
checkpoint of its weights (issue #14, finding 6: a NaN run kept training
and wrote NaN checkpoints)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
import test_damaged_checkpoints as damaged

from easymatch.training.non_finite import NonFiniteError


def train(data, model_dir, num_steps: int, **extra) -> None:
    damaged.train(
        data,
        model_dir,
        num_steps,
        **{
            "data_config.shuffle": False,
            "data_config.sample_weight_fields": ["sample_weight"],
            **extra,
        },
    )


@pytest.mark.slow
def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(
    taobao_data, tmp_path
):
    # Finite weights whose sum overflows float32 make the weighted loss
    # NaN from the fifth batch (of 32 rows) on.
    table = pq.read_table(taobao_data / "train.parquet")
    weights = np.ones(table.num_rows)
    weights[4 * 32 :] = 3e38
    train_path = tmp_path / "train.parquet"
    pq.write_table(
        table.set_column(
            table.schema.get_field_index("sample_weight"),
            "sample_weight",
            pa.array(weights),
        ),
        train_path,
    )
    model_dir = tmp_path / "m"
    data = {"train_input_path": str(train_path)}
    train(taobao_data, model_dir, 4, **data)
    with pytest.raises(NonFiniteError) as info:
        train(taobao_data, model_dir, 40, **data)
    message = str(info.value)
    found = re.match(
        r"step (\d+): non-finite training: loss terms "
        r"softmax_cross_entropy=(\S+), regularization=(\S+); "
        r"first non-finite: (.+); the latest checkpoint stays the one of "
        r"step 4$",
        message,
    )
    assert found, message
    assert int(found.group(1)) == 5
    assert found.group(4).startswith(("loss ", "gradient of ", "input "))
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    assert not list(model_dir.glob("model.ckpt-[!4]*"))
    reader = tf.train.load_checkpoint(str(model_dir))
    for name in reader.get_variable_to_shape_map():
        value = reader.get_tensor(name)
        if np.issubdtype(np.asarray(value).dtype, np.floating):
            assert np.isfinite(value).all(), name
