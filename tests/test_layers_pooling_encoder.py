"""PoolingEncoder: sum/mean pooling, truncation, empty sequences."""

import keras
import numpy as np
import pytest

from easymatch.layers import PoolingEncoder

# Rows: 3 valid positions, 1 valid position, empty.
SEQUENCE = np.array(
    [
        [[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [0.0, 0.0]],
        [[5.0, 50.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
    ],
    dtype="float32",
)
LENGTH = np.array([3, 1, 0], dtype="int32")


def _pool(**kwargs) -> np.ndarray:
    out = PoolingEncoder(**kwargs)(SEQUENCE, LENGTH)
    return keras.ops.convert_to_numpy(out)


def test_sum():
    np.testing.assert_allclose(
        _pool(pooling_type="sum"), [[6.0, 60.0], [5.0, 50.0], [0.0, 0.0]]
    )


def test_mean_and_empty_sequence_is_zero():
    got = _pool(pooling_type="mean")
    np.testing.assert_allclose(got, [[2.0, 20.0], [5.0, 50.0], [0.0, 0.0]])
    assert np.isfinite(got).all()


def test_max_seq_length_truncates_and_clamps_the_length():
    np.testing.assert_allclose(
        _pool(pooling_type="sum", max_seq_length=2),
        [[3.0, 30.0], [5.0, 50.0], [0.0, 0.0]],
    )
    np.testing.assert_allclose(
        _pool(pooling_type="mean", max_seq_length=2),
        [[1.5, 15.0], [5.0, 50.0], [0.0, 0.0]],
    )


def test_zero_length_sequence_axis():
    out = PoolingEncoder()(
        np.zeros((2, 0, 3), "float32"), np.zeros((2,), "int32")
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), 0.0)


def test_unknown_pooling_type_raises():
    with pytest.raises(ValueError, match="max"):
        PoolingEncoder(pooling_type="max")
