"""All embedding tables of one EmbeddingGroup, looked up by table name."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from easymatch.layers import sharded_tables
from easymatch.specs.embedding import TableSpec
from easymatch.variable_rows import gather_rows


def _default_initializer(num_embeddings: int) -> keras.initializers.Initializer:
    # torchrec's default, so tables start on the same scale as in TER.
    bound = math.sqrt(1.0 / num_embeddings)
    return keras.initializers.RandomUniform(minval=-bound, maxval=bound)


@keras.saving.register_keras_serializable(package="easymatch")
class EmbeddingTables(keras.layers.Layer):
    """One embedding weight per table; padding ids (< 0) embed to zeros.

    This layer is the only owner of the table variables, so sharding them
    (e.g. under a ParameterServerStrategy) only has to change this file.

    Args:
        tables: the tables' specs, with distinct names. A spec without
            an initializer starts with torchrec's
            uniform(±sqrt(1 / num_embeddings)).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        ids: dict table name → int ids `[..., L]`, padded with -1.

    Returns:
        dict table name → embeddings `[..., L, embedding_dim]`.
    """

    def __init__(self, tables: Sequence[TableSpec], **kwargs: Any):
        super().__init__(**kwargs)
        self.tables = tuple(tables)
        self._variables_by_table: dict[str, keras.Variable] = {}
        # Tables sharded over parameter servers (sharded_tables.py).
        self.sharded_tables: dict[str, tf.Variable] = {}
        names: set[str] = set()
        for spec in self.tables:
            if spec.name in names:
                raise ValueError(
                    f"Embedding table {spec.name!r} is listed twice."
                )
            if spec.initializer is not None:
                initializer = keras.initializers.get(spec.initializer)
            else:
                initializer = _default_initializer(spec.num_embeddings)
            names.add(spec.name)
            shape = (spec.num_embeddings, spec.embedding_dim)
            table = sharded_tables.create_table(spec.name, shape, initializer)
            if table is not None:
                self.sharded_tables[spec.name] = table
                continue
            self._variables_by_table[spec.name] = self.add_weight(
                name=spec.name,
                shape=shape,
                initializer=initializer,
            )
        # Every weight exists already; no input shape is needed.
        self.built = True

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        """The Keras table variables, in the order of `tables` (sharded
        ones are in `sharded_tables`)."""
        return list(self._variables_by_table.values())

    def table_variables(self) -> dict[str, Any]:
        """Every table's variable by name, in the order of `tables`: a
        Keras weight, or a sharded tf.Variable."""
        return {
            spec.name: self.sharded_tables[spec.name]
            if spec.name in self.sharded_tables
            else self._variables_by_table[spec.name]
            for spec in self.tables
        }

    def table_path(self, table_name: str) -> str:
        """The table's name in messages: its Keras weight's path in one
        process (`<layer>/<table>`), for a sharded table too."""
        if table_name in self.sharded_tables:
            return f"{self.name}/{table_name}"
        return self._variables_by_table[table_name].path

    def lookup(self, table_name: str, ids: Any) -> Any:
        """Embeds int ids `[..., L]` into `[..., L, dim]`; ids < 0 give 0.

        Only valid ids are gathered, from the variable itself: the gradient
        is a tf.IndexedSlices over exactly the looked-up rows, so row-sparse
        optimizers touch neither the rest of the table nor a padding row,
        and no step reads the whole table.
        """
        if table_name in self.sharded_tables:
            return sharded_tables.lookup(
                self.sharded_tables[table_name], ids, self.compute_dtype
            )
        table = self._variables_by_table[table_name]
        ids = tf.convert_to_tensor(ids)
        valid = ids >= 0
        rows = gather_rows(table, tf.boolean_mask(ids, valid))
        shape = tf.concat(
            [tf.shape(ids, out_type=tf.int64), [table.shape[-1]]], axis=0
        )
        embeddings = tf.scatter_nd(tf.where(valid), rows, shape)
        return tf.cast(embeddings, self.compute_dtype)

    def call(self, ids: dict[str, Any]) -> dict[str, Any]:
        return {name: self.lookup(name, value) for name, value in ids.items()}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["tables"] = [spec.get_config() for spec in self.tables]
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EmbeddingTables:
        config = dict(config)
        config["tables"] = [TableSpec.from_config(t) for t in config["tables"]]
        return cls(**config)
