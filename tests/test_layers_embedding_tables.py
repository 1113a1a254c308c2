"""EmbeddingTables: padding, row-sparse gradients, initialisation."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.layers import EmbeddingTables
from easymatch.specs import TableSpec


def _tables() -> EmbeddingTables:
    return EmbeddingTables(
        [TableSpec("user_emb", 100, 50), TableSpec("item_emb", 7, 3)]
    )


def test_one_variable_per_table_named_after_it():
    layer = _tables()
    names = [v.name for v in layer.embedding_variables]
    assert names == ["user_emb", "item_emb"]
    assert [tuple(v.shape) for v in layer.embedding_variables] == [
        (100, 50),
        (7, 3),
    ]


def test_padding_ids_embed_to_zeros():
    layer = _tables()
    table = layer.embedding_variables[1]
    table.assign(np.arange(21, dtype="float32").reshape(7, 3) + 1.0)
    ids = np.array([[2, -1, 0], [-1, -1, -1]], dtype="int64")
    got = keras.ops.convert_to_numpy(layer.lookup("item_emb", ids))
    expected = np.zeros((2, 3, 3), "float32")
    expected[0, 0] = [7.0, 8.0, 9.0]
    expected[0, 2] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(got, expected)


def test_call_looks_up_every_table_given():
    layer = _tables()
    out = layer(
        {
            "user_emb": np.array([[1, -1]], "int64"),
            "item_emb": np.array([[3]], "int64"),
        }
    )
    assert tuple(out["user_emb"].shape) == (1, 2, 50)
    assert tuple(out["item_emb"].shape) == (1, 1, 3)


@pytest.mark.parametrize("graph", [False, True])
def test_gradient_is_indexed_slices(graph):
    layer = _tables()
    table = layer.embedding_variables[0]
    ids = tf.constant([[1, 5, -1], [5, -1, -1]], tf.int64)

    def grad():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer.lookup("user_emb", ids))
        return tape.gradient(loss, layer.embedding_variables)[0]

    gradient = tf.function(grad)() if graph else grad()
    assert isinstance(gradient, tf.IndexedSlices)
    dense = tf.convert_to_tensor(gradient).numpy()
    assert dense.shape == tuple(table.shape)
    np.testing.assert_array_equal(dense[1], np.ones(50))
    np.testing.assert_array_equal(dense[5], 2 * np.ones(50))
    # Padding must not leak a gradient into row 0.
    np.testing.assert_array_equal(dense[0], np.zeros(50))


def test_default_init_is_torchrec_uniform():
    values = keras.ops.convert_to_numpy(_tables().embedding_variables[0])
    bound = math.sqrt(1.0 / 100)
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.9 * bound
    assert abs(values.mean()) < 0.01


def test_initializer_from_config():
    initializer = {"class_name": "Constant", "config": {"value": 0.5}}
    layer = EmbeddingTables([TableSpec("t", 4, 2, initializer)])
    values = keras.ops.convert_to_numpy(layer.embedding_variables[0])
    np.testing.assert_array_equal(values, np.full((4, 2), 0.5))
    rebuilt = EmbeddingTables.from_config(layer.get_config())
    assert rebuilt.get_config() == layer.get_config()


def test_bad_sizes_or_a_repeated_table_raise():
    with pytest.raises(ValueError, match="positive"):
        TableSpec("t", 0, 2)
    with pytest.raises(ValueError, match="listed twice"):
        EmbeddingTables([TableSpec("t", 4, 2), TableSpec("t", 4, 2)])
