"""Row-sparse updates of embedding tables sharded over parameter servers.

Under ParameterServerStrategy a large table is a `ShardedVariable` (a raw
`tf.Variable` per ps task, see embedding_tables.py): Keras 3 cannot hold
one, so Keras optimizers cannot update it. `ShardedRowSparse` applies a
row-sparse optimizer's rule (sparse_optimizers.py) shard by shard: the
gradient w.r.t. each shard is an IndexedSlices of that shard's own rows,
and each slot table is sharded like its table (same shape, same
partitioner), so shard i of a table and of its slots sit on the same ps
and a step moves only the touched rows.
"""

from __future__ import annotations

import tensorflow as tf

from easymatch.layers import sharded_tables
from easymatch.training.sparse_optimizers import (
    _RowSparseOptimizer,
    _sum_duplicates,
)

ShardedVariable = tf.__internal__.distribute.ShardedVariable


class ShardedRowSparse:
    """Slots and updates of `optimizer`'s rule for sharded tables.

    Create it under the strategy's scope, after the tables: the slot
    tables are created there, sharded as the tables are.
    """

    def __init__(
        self,
        optimizer: _RowSparseOptimizer,
        tables: list[tf.Variable],
        paths: list[str] | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.tables = list(tables)
        # The tables' names in messages (the non-finite guard's).
        self.paths = paths or [table.name for table in self.tables]
        self.slots = [
            [_slot(table, name, value) for name, value in self._specs()]
            for table in self.tables
        ]

    def _specs(self) -> list[tuple[str, float]]:
        return self.optimizer._slot_specs()

    def checkpoint_tree(self) -> dict[str, tf.Variable]:
        """The slot tables keyed by table position and slot name."""
        return {
            f"{index}_{name}": slot
            for index, slots in enumerate(self.slots)
            for (name, _), slot in zip(self._specs(), slots, strict=True)
        }

    def slots_of(self, table: tf.Variable) -> list[tf.Variable]:
        """The slot tables of `table` (one of `tables`), in the
        optimizer's `slot_names` order."""
        [index] = [i for i, t in enumerate(self.tables) if t is table]
        return self.slots[index]

    def shard_variables(self) -> list[tf.Variable]:
        """Every shard of every table: what gradients are taken for."""
        return [shard for table in self.tables for shard in table.variables]

    def per_table(self, gradients: list) -> list[list]:
        """`gradients` in the order of `shard_variables()`, grouped into
        one list of its shards' gradients per table."""
        grouped, position = [], 0
        for table in self.tables:
            count = len(table.variables)
            grouped.append(list(gradients[position : position + count]))
            position += count
        return grouped

    def apply(self, gradients: list, learning_rate: tf.Tensor) -> None:
        """`gradients` in the order of `shard_variables()`."""
        position = 0
        for table, slots in zip(self.tables, self.slots, strict=True):
            for index, shard in enumerate(table.variables):
                gradient = gradients[position]
                position += 1
                if gradient is None:
                    continue
                self._apply_shard(
                    gradient,
                    shard,
                    [slot.variables[index] for slot in slots],
                    learning_rate,
                )

    def _apply_shard(
        self,
        gradient: tf.IndexedSlices,
        shard: tf.Variable,
        slots: list[tf.Variable],
        learning_rate: tf.Tensor,
    ) -> None:
        gradient = _sum_duplicates(gradient)
        ids = gradient.indices
        lr = tf.cast(learning_rate, shard.dtype)
        old = [tf.gather(slot, ids) for slot in slots]
        delta, new = self.optimizer._rule(
            tf.cast(gradient.values, shard.dtype), old, lr
        )
        for slot, rows in zip(slots, new, strict=True):
            slot.scatter_update(tf.IndexedSlices(rows, ids))
        shard.scatter_sub(tf.IndexedSlices(delta, ids))


def _slot(table: tf.Variable, name: str, value: float) -> tf.Variable:
    """A slot table sharded as `table` is, each shard filled on its ps."""

    def initial_value(partition_shape=None, partition_offset=None):
        del partition_offset
        return tf.fill(
            partition_shape or table.shape, tf.cast(value, table.dtype)
        )

    with sharded_tables.sharded(len(getattr(table, "variables", [table]))):
        return tf.Variable(
            initial_value,
            shape=table.shape,
            dtype=table.dtype,
            name=f"{table.name.split(':')[0]}/{name}",
            trainable=False,
        )
