"""TensorProto ↔ numpy for requests and responses.

tf.make_ndarray and tf.make_tensor_proto cost ~0.1 ms a tensor in Python,
and a request has one tensor per input column, decoded on the event loop.
The dtypes the signatures use (int64, int32, float32, bool, string) are
converted here directly; anything else goes through TensorFlow's helpers.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from easymatch.serve.signature import check_dtype
from easymatch.serve.status import invalid

# DataType → (numpy dtype, the repeated field of the proto).
FAST = {
    types_pb2.DT_INT64: (np.int64, "int64_val"),
    types_pb2.DT_INT32: (np.int32, "int_val"),
    types_pb2.DT_FLOAT: (np.float32, "float_val"),
    types_pb2.DT_BOOL: (np.bool_, "bool_val"),
}


def decode_tensor(name: str, proto, expected: tuple[tf.DType, ...]):
    """The request tensor `name` as numpy, after TF Serving's dtype check."""
    check_dtype(name, expected, proto.dtype)
    shape = [dim.size for dim in proto.tensor_shape.dim]
    size = math.prod(shape)
    if proto.dtype == types_pb2.DT_STRING:
        if len(proto.string_val) == size:
            array = np.empty(size, dtype=object)
            array[:] = list(proto.string_val)
            return array.reshape(shape)
    elif proto.dtype in FAST:
        dtype, field = FAST[proto.dtype]
        if proto.tensor_content:
            if len(proto.tensor_content) == size * np.dtype(dtype).itemsize:
                return np.frombuffer(proto.tensor_content, dtype).reshape(shape)
        elif len(values := getattr(proto, field)) == size:
            return np.array(values, dtype=dtype).reshape(shape)
    try:  # repeated-last-value encodings, other dtypes, malformed tensors
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as error:
        raise invalid(f"input {name!r}: malformed tensor: {error}") from None


def encode_tensor(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A response tensor; numeric arrays as raw little-endian content."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
        proto.string_val.extend(
            v.encode() if isinstance(v, str) else bytes(v)
            for v in array.ravel().tolist()
        )
    else:
        dtype = tf.as_dtype(array.dtype)
        proto = tensor_pb2.TensorProto(
            dtype=dtype.as_datatype_enum,
            tensor_content=np.ascontiguousarray(
                array, array.dtype.newbyteorder("<")
            ).tobytes(),
        )
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    return proto
