"""Which tables shard, into how many shards, and their lookups (the
cluster itself: test_training_parameter_server.py)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from conftest import DEMO_CONFIG

from easymatch.checkpoint import variable_tree
from easymatch.config import load_pipeline_config
from easymatch.layers import EmbeddingTables, sharded_tables
from easymatch.run_context import RunContext
from easymatch.specs import TableSpec
from easymatch.training.ps_loop import table_sharding


def test_default_threshold_is_one_ps_fair_share() -> None:
    # 100 + 300 bytes over 2 ps: 200 each; only a table of >= 200 shards.
    assert sharded_tables.default_min_bytes([100, 300], 2) == 200
    assert sharded_tables.default_min_bytes([100, 301], 2) == 201
    plan = sharded_tables.TableSharding(num_shards=2, min_bytes=200)
    assert plan.shards((10, 5), tf.float32) == 2  # 200 bytes
    assert plan.shards((10, 4), tf.float32) == 1  # 160 bytes


def test_partitioner_shards_only_inside_sharded() -> None:
    shape = tf.TensorShape([10, 4])
    assert sharded_tables.partitioner(shape, tf.float32) == [1, 1]
    with sharded_tables.sharded(3):
        assert sharded_tables.partitioner(shape, tf.float32) == [3, 1]
        # Never more shards than rows.
        assert sharded_tables.partitioner(
            tf.TensorShape([2, 4]), tf.float32
        ) == [2, 1]
    assert sharded_tables.partitioner(shape, tf.float32) == [1, 1]


def test_lookup_embeds_ids_and_zeros_padding() -> None:
    table = tf.Variable(np.arange(12, dtype=np.float32).reshape(4, 3))
    ids = tf.constant([[1, -1], [3, 0]])
    with tf.GradientTape() as tape:
        rows = sharded_tables.lookup(table, ids, "float32")
        loss = tf.reduce_sum(rows)
    expected = [[[3, 4, 5], [0, 0, 0]], [[9, 10, 11], [0, 1, 2]]]
    np.testing.assert_array_equal(rows.numpy(), expected)
    gradient = tape.gradient(loss, table)
    # Row-sparse: the gradient names the looked-up rows only.
    assert isinstance(gradient, tf.IndexedSlices)
    assert sorted(gradient.indices.numpy().tolist()) == [0, 1, 3]


def test_tables_under_a_plan_leave_the_keras_weights() -> None:
    specs = [TableSpec("big", 10, 5), TableSpec("small", 10, 4)]
    plan = sharded_tables.TableSharding(num_shards=2, min_bytes=200)
    with sharded_tables.sharding(plan):
        layer = EmbeddingTables(specs)
    assert list(layer.sharded_tables) == ["big"]
    assert [v.name for v in layer.embedding_variables] == ["small"]
    big = layer.sharded_tables["big"]
    # torchrec's bound, uniform(±sqrt(1 / 10)).
    assert np.abs(big.numpy()).max() <= np.sqrt(0.1)
    out = layer({"big": tf.constant([[2, -1]])})["big"].numpy()
    np.testing.assert_array_equal(out[0, 0], big.numpy()[2])
    np.testing.assert_array_equal(out[0, 1], np.zeros(5))
    # The checkpoint key of a one-process table: checkpoints interchange.
    assert set(variable_tree(layer)) == {"v_big", "v_small"}
    # Outside a plan nothing is sharded.
    assert not EmbeddingTables(specs).sharded_tables


def test_default_threshold_of_the_demo_config() -> None:
    config = load_pipeline_config(str(DEMO_CONFIG))
    run = RunContext(config)
    # The demo's 18 float32 tables hold 90 095 rows of 16: 5 766 080
    # bytes, half of it per ps of two; its largest table (20 000 rows,
    # 1 280 000 bytes) stays whole.
    assert table_sharding(run, 2) == sharded_tables.TableSharding(
        num_shards=2, min_bytes=2_883_040
    )
    config.train_config.shard_min_bytes = 100_000
    assert table_sharding(run, 3).min_bytes == 100_000
