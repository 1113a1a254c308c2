"""Which tables a checkpoint's writer sharded, and the table orders its
optimizer slots follow (easymatch/checkpoint/table_slots.py). The
restores across layouts run end to end in
tests/test_training_parameter_server.py."""

from __future__ import annotations

import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits

from easymatch.checkpoint import table_slots
from easymatch.config import load_pipeline_config
from easymatch.errors import EasyMatchError
from easymatch.run_context import RunContext


def _tables(*rows: int) -> list[tf.Variable]:
    return [tf.Variable(tf.zeros([n, 4])) for n in rows]


def test_the_writer_sharded_its_largest_tables() -> None:
    tables = _tables(10, 300, 20, 300, 100)
    # The writer's Keras optimizer held 3 of the 5: the 2 largest were
    # sharded (two equal ones: a size threshold takes both or neither).
    sharded = table_slots._sharded_when_written("ckpt", tables, held=3)
    assert sharded == {id(tables[1]), id(tables[3])}
    assert table_slots._sharded_when_written("ckpt", tables, held=5) == set()


def test_a_split_no_size_threshold_makes_is_one_error_line() -> None:
    tables = _tables(10, 300, 20, 300)
    with pytest.raises(EasyMatchError) as info:
        table_slots._sharded_when_written("m/model.ckpt-4", tables, held=3)
    assert str(info.value) == (
        "m/model.ckpt-4: checkpoint does not match the model: its sparse "
        "optimizer holds 3 of the model's 4 embedding tables, which no "
        "sharding by size leaves"
    )


def test_table_orders(taobao_data, tmp_path) -> None:
    config = load_pipeline_config(
        str(DEMO_CONFIG), demo_edits(taobao_data, tmp_path)
    )
    model = RunContext(config).create_model()
    tables = table_slots.tables_of(model, breadth_first=False)
    depth_first = [(t.name, t.variable) for t in tables]
    # Depth first is the sparse optimizer's (Keras') order; the paths are
    # the Keras weights' (what the non-finite guard names).
    keras_order = model.split_variables()[0]
    assert [id(t) for _, t in depth_first] == [id(v) for v in keras_order]
    assert [t.path for t in tables] == [v.path for v in keras_order]
    assert tables[0].path == "embedding_tables/user_id_emb"
    assert [name for name, _ in depth_first][:2] == [
        "user_id_emb",
        "cms_segid_emb",
    ]
    breadth_first = [
        (t.name, t.variable)
        for t in table_slots.tables_of(model, breadth_first=True)
    ]
    assert sorted(n for n, _ in breadth_first) == sorted(
        n for n, _ in depth_first
    )
    # A one-process model restoring its own layout needs no rearranging.
    path = str(tmp_path / "ckpt")
    tf.train.Checkpoint(sparse_optimizer=model.sparse_optimizer).write(path)
    assert table_slots.slot_objects(model, path) is None
