"""Embedding tables' optimizer slots across table layouts.

The row-sparse optimizer's slots of a table (Adagrad's accumulator,
Adam's moments) are checkpointed where the writing run kept them:

- a table held by Keras: in the Keras sparse optimizer, as
  `sparse_optimizer/_slots/<slot>/<k>`, k its position among the tables
  that optimizer holds (Keras' trainable-variable order);
- a table sharded over ps tasks (training/ps_loop.py): as
  `sharded_sparse_optimizer/<i>_<slot name>`, i its position among the
  sharded tables (layer order, `tables_of(..., breadth_first=True)`).

The model's weights are keyed by layer structure in every layout, but
these positions depend on which tables were sharded. A checkpoint
written with another set of sharded tables (one process ↔ PS, or PS
with another ps count or `shard_min_bytes`) is therefore read through
`slot_objects`: the model's slot variables arranged as the writer
arranged its own, so tf.train.Checkpoint reads every table's slots into
that table's slots, whole or sharded (it slices a saved tensor into the
shards, or joins them).

Which tables the writer sharded follows from the checkpoint: the writer
held all but its sharded tables in Keras, and sharding takes every table
of at least `shard_min_bytes` bytes (layers/sharded_tables.py), so the
sharded ones are the largest. A count that splits tables of equal size
cannot come from that rule and ends in one error line.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import keras
import tensorflow as tf

from easymatch.checkpoint.variables import sublayers
from easymatch.errors import EasyMatchError


class Table(NamedTuple):
    """An embedding table of a model."""

    name: str
    # Its name in messages, as the one-process guard names its gradient.
    path: str
    # A Keras weight, or a tf.Variable sharded over ps tasks.
    variable: Any


def tables_of(model: keras.Model, *, breadth_first: bool) -> list[Table]:
    """Every table of the model once, each EmbeddingTables layer's in its
    tables' order.

    Depth first is Keras' trainable-variable order (a layer's own
    weights, then its sub-layers'); breadth first is the order of the
    sharded tables and of their optimizer slots (ps_loop).
    """
    found: dict[int, Table] = {}
    layers = [model]
    while layers:
        layer = layers.pop(0)
        if hasattr(layer, "table_variables"):
            for name, table in layer.table_variables().items():
                found.setdefault(
                    id(table), Table(name, layer.table_path(name), table)
                )
        children = sublayers(layer)
        layers = layers + children if breadth_first else children + layers
    return list(found.values())


def _sharded(model: keras.Model) -> set[int]:
    tables = getattr(model, "sharded_sparse", None)
    return {id(t) for t in tables.tables} if tables is not None else set()


def _slots(model: keras.Model, table: Any) -> list[Any]:
    """The model's slot variables of `table`, in the optimizer's order."""
    sharded = getattr(model, "sharded_sparse", None)
    if id(table) in _sharded(model):
        return sharded.slots_of(table)
    return model.sparse_optimizer.slot_variables(table)


def _size(table: Any) -> int:
    return math.prod(tuple(table.shape)) * tf.as_dtype(table.dtype).size


def _held_by_keras(path: str) -> int | None:
    """How many tables the writer's Keras sparse optimizer held, or None
    if the checkpoint has no sparse optimizer."""
    view = tf.train.CheckpointView(path)
    optimizer = view.children(0).get("sparse_optimizer")
    if optimizer is None:
        return None
    held = view.children(optimizer).get("_trainable_variables")
    return len(view.children(held)) if held is not None else 0


def _sharded_when_written(path: str, tables: list, held: int) -> set[int]:
    """The tables (by id) the writer sharded: all it did not hold in
    Keras, which by the sharding rule are the largest."""
    count = len(tables) - held
    sizes = sorted((_size(t) for t in tables), reverse=True)
    if count < 0 or (
        0 < count < len(tables) and sizes[count - 1] == sizes[count]
    ):
        raise EasyMatchError(
            f"{path}: checkpoint does not match the model: its sparse "
            f"optimizer holds {held} of the model's {len(tables)} "
            "embedding tables, which no sharding by size leaves"
        )
    if count == 0:
        return set()
    return {id(t) for t in tables if _size(t) >= sizes[count - 1]}


def slot_objects(model: keras.Model, path: str) -> dict[str, Any] | None:
    """tf.train.Checkpoint's `sparse_optimizer` (and
    `sharded_sparse_optimizer`) objects holding the model's slots as the
    checkpoint at `path` arranges them; None when that is the model's
    own arrangement (or the model has no row-sparse optimizer)."""
    optimizer = getattr(model, "sparse_optimizer", None)
    if not hasattr(optimizer, "slot_variables"):
        return None
    held = _held_by_keras(path)
    tables = [t.variable for t in tables_of(model, breadth_first=False)]
    own = [id(t) for t in tables if id(t) not in _sharded(model)]
    if own != [id(v) for v in model.split_variables()[0]]:
        # Keras' order is what the optimizer's slot positions follow.
        raise RuntimeError("tables_of: not the sparse optimizer's order")
    if held is None or held == len(own):
        return None
    sharded = _sharded_when_written(path, tables, held)
    names = optimizer.slot_names
    keras_held = [_slots(model, t) for t in tables if id(t) not in sharded]
    objects: dict[str, Any] = {"sparse_optimizer": optimizer.counters()}
    if names:
        objects["sparse_optimizer"]["_slots"] = [
            [slots[s] for slots in keras_held] for s in range(len(names))
        ]
    written = [
        t.variable
        for t in tables_of(model, breadth_first=True)
        if id(t.variable) in sharded
    ]
    if names and written:
        objects["sharded_sparse_optimizer"] = {
            f"{index}_{name}": _slots(model, table)[s]
            for index, table in enumerate(written)
            for s, name in enumerate(names)
        }
    return objects
