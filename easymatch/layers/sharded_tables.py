"""Embedding tables sharded over parameter servers.

Under ParameterServerStrategy a table of at least `min_bytes` is a raw
`tf.Variable` created under the strategy scope while `sharding` is active:
the strategy's `partitioner` then cuts it into one shard per ps task (a
`ShardedVariable`, rows split as `tf.nn.embedding_lookup`'s "div"
strategy expects). Keras 3 cannot hold a ShardedVariable (keras#18624),
so EmbeddingTables keeps such a table beside its Keras weights and looks
it up here; every other variable gets one partition and stays a plain
variable on one ps. Each shard is initialized on its own ps: no process
ever materializes the whole table.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf

# Shards of the variable being created (1 outside `sharded`).
_SHARDS: contextvars.ContextVar[int] = contextvars.ContextVar(
    "easymatch_shards", default=1
)
# The plan for the tables being created (None: nothing is sharded).
_PLAN: contextvars.ContextVar[TableSharding | None] = contextvars.ContextVar(
    "easymatch_table_sharding", default=None
)


def partitioner(shape: tf.TensorShape, dtype: tf.DType) -> list[int]:
    """ParameterServerStrategy's variable_partitioner: shards only what is
    created inside `sharded`."""
    return [min(_SHARDS.get(), max(int(shape[0]), 1))] + [1] * (len(shape) - 1)


@contextlib.contextmanager
def sharded(num_shards: int) -> Iterator[None]:
    """Variables created inside are cut into `num_shards` shards."""
    token = _SHARDS.set(num_shards)
    try:
        yield
    finally:
        _SHARDS.reset(token)


@dataclass(frozen=True)
class TableSharding:
    """Tables of at least `min_bytes` get `num_shards` shards."""

    num_shards: int
    min_bytes: int

    def shards(self, shape: tuple[int, ...], dtype: tf.DType) -> int:
        size = math.prod(shape) * tf.as_dtype(dtype).size
        return self.num_shards if size >= self.min_bytes else 1


def default_min_bytes(table_bytes: list[int], num_ps: int) -> int:
    """A table is sharded when it exceeds one ps task's fair share of all
    table bytes: placed whole, it alone would unbalance the ps tasks."""
    return max(math.ceil(sum(table_bytes) / max(num_ps, 1)), 1)


@contextlib.contextmanager
def sharding(plan: TableSharding | None) -> Iterator[None]:
    """EmbeddingTables created inside shard their tables as `plan` says."""
    token = _PLAN.set(plan)
    try:
        yield
    finally:
        _PLAN.reset(token)


def _initial_value(
    initializer: keras.initializers.Initializer,
    shape: tuple[int, ...],
    dtype: tf.DType,
    partition_shape: tuple[int, ...] | None = None,
    partition_offset: tuple[int, ...] | None = None,
) -> tf.Tensor:
    # The strategy passes each shard's shape: the value is drawn on that
    # shard's ps. The initializers' bounds come from their config, not
    # from the shape they are called with.
    del partition_offset
    return initializer(partition_shape or shape, dtype=dtype)


def create_table(
    name: str,
    shape: tuple[int, int],
    initializer: keras.initializers.Initializer,
    dtype: Any = "float32",
) -> tf.Variable | None:
    """A ShardedVariable for the table if the active plan shards it, else
    None (the caller creates an ordinary Keras weight)."""
    plan = _PLAN.get()
    dtype = tf.as_dtype(dtype)
    if plan is None or plan.shards(shape, dtype) < 2:
        return None
    with sharded(plan.shards(shape, dtype)):
        return tf.Variable(
            functools.partial(_initial_value, initializer, shape, dtype),
            shape=shape,
            dtype=dtype,
            name=name,
        )


def lookup(table: tf.Variable, ids: Any, dtype: Any) -> tf.Tensor:
    """Embeds int ids `[..., L]` into `[..., L, dim]`; ids < 0 give 0.

    `tf.nn.embedding_lookup` gathers from each shard only the ids it
    holds; the gradient is one IndexedSlices per shard.
    """
    ids = tf.convert_to_tensor(ids)
    valid = ids >= 0
    rows = tf.nn.embedding_lookup(table, tf.boolean_mask(ids, valid))
    shape = tf.concat(
        [tf.shape(ids, out_type=tf.int64), [table.shape[-1]]], axis=0
    )
    return tf.cast(tf.scatter_nd(tf.where(valid), rows, shape), dtype)
