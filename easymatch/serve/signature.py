"""A servable signature: its inputs, outputs, SignatureDef and runner."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

from easymatch.serve.status import invalid

Arrays = dict[str, np.ndarray]
Runner = Callable[[Arrays, dict], Arrays]


@dataclass
class Signature:
    """`inputs` are [batch] tensors (all required); `options` optional
    scalars that apply to the whole request (retrieval's top_k, exact)."""

    name: str
    inputs: dict[str, tf.DType]
    outputs: dict[str, tf.DType]
    definition: meta_graph_pb2.SignatureDef
    run: Runner
    options: dict[str, tuple[tf.DType, ...]] = field(default_factory=dict)

    def accepts(self, name: str) -> tuple[tf.DType, ...]:
        """The dtypes input `name` may have; unknown names are an error."""
        if name in self.inputs:
            return (self.inputs[name],)
        if name in self.options:
            return self.options[name]
        known = ", ".join([*self.inputs, *self.options])
        raise invalid(
            f"input {name!r} is not an input of signature {self.name!r} "
            f"(its inputs: {known})"
        )

    def split(self, arrays: Arrays) -> tuple[Arrays, dict, int]:
        """(batch inputs, option values, rows) of checked request arrays."""
        for name in arrays:
            self.accepts(name)
        if missing := [n for n in self.inputs if n not in arrays]:
            raise invalid(
                f"signature {self.name!r}: input {missing[0]!r} is missing "
                f"(required: {', '.join(self.inputs)})"
            )
        rows: dict[str, int] = {}
        for name in self.inputs:
            shape = arrays[name].shape
            if len(shape) != 1:
                raise invalid(
                    f"input {name!r}: expects shape [batch], got {list(shape)}"
                )
            rows[name] = shape[0]
        if len(set(rows.values())) > 1:
            sizes = ", ".join(f"{n} has {r}" for n, r in rows.items())
            raise invalid(f"inputs have different batch sizes: {sizes}")
        options = {}
        for name in self.options:
            if name in arrays:
                value = arrays[name]
                if value.size != 1:
                    raise invalid(f"input {name!r}: expects a scalar")
                options[name] = value.reshape(()).item()
        batch = {name: arrays[name] for name in self.inputs}
        return batch, options, next(iter(rows.values()), 0)


def tensor_info(name: str, dtype: tf.DType, shape: list[int]):
    info = meta_graph_pb2.TensorInfo(name=name, dtype=dtype.as_datatype_enum)
    info.tensor_shape.SetInParent()  # a scalar's shape is known: []
    for size in shape:
        info.tensor_shape.dim.add(size=size)
    return info


def check_dtype(name: str, expected: tuple[tf.DType, ...], given: int):
    """TF Serving's check: the tensor's dtype must be the signature's."""
    if given in [dtype.as_datatype_enum for dtype in expected]:
        return
    try:
        given_name = tf.as_dtype(given).name
    except TypeError:
        given_name = f"DataType {given}"
    raise invalid(
        f"input {name!r}: expects {' or '.join(d.name for d in expected)} "
        f"but {given_name} is provided"
    )
