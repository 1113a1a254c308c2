"""easymatch.serve's TensorProto conversions agree with TensorFlow's."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from easymatch.serve.status import ServeError
from easymatch.serve.tensors import decode_tensor, encode_tensor

ARRAYS = [
    np.array([3, -1, 2**40], np.int64),
    np.array([[1, 2], [3, 4]], np.int32),
    np.array([0.5, np.nan, -np.inf], np.float32),
    np.array([True, False]),
    np.array([b"a", b"", b"\xff\x00"], dtype=object),
    np.array(["7", "42"]),
    np.float32(1.5),
    np.zeros((0, 3), np.float32),
]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: str(a.dtype))
def test_encode_is_read_back_by_tensorflow(array):
    decoded = tf.make_ndarray(encode_tensor(array))
    expected = np.asarray(array)
    if expected.dtype.kind == "U":
        expected = np.char.encode(expected)
    np.testing.assert_array_equal(decoded, expected)
    assert decoded.shape == expected.shape


@pytest.mark.parametrize("array", ARRAYS[:5], ids=lambda a: str(a.dtype))
def test_decode_reads_what_tensorflow_writes(array):
    proto = tf.make_tensor_proto(array)
    dtype = tf.as_dtype(proto.dtype)
    decoded = decode_tensor("x", proto, (dtype,))
    np.testing.assert_array_equal(decoded, array)
    assert decoded.shape == array.shape


def test_decode_repeated_last_value_and_value_fields():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64)
    proto.tensor_shape.dim.add(size=3)
    proto.int64_val.append(5)
    assert decode_tensor("x", proto, (tf.int64,)).tolist() == [5, 5, 5]
    proto.int64_val.extend([6, 7])
    assert decode_tensor("x", proto, (tf.int64,)).tolist() == [5, 6, 7]


def test_decode_refuses_another_dtype():
    with pytest.raises(ServeError) as caught:
        decode_tensor("user_id", tf.make_tensor_proto([1.0]), (tf.int64,))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message == (
        "input 'user_id': expects int64 but float32 is provided"
    )
