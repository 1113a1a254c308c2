"""All embedding tables of one EmbeddingGroup, looked up by table name."""

import json
import math
from typing import Any

import keras
import tensorflow as tf

from easymatch.layers import sharded_tables

_REQUIRED_KEYS = ("num_embeddings", "embedding_dim")


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
        tables: table name → `{"num_embeddings": int, "embedding_dim": int}`,
            optionally with `"initializer"`, a Keras initializer identifier
            or serialized config. The default is torchrec's
            uniform(±sqrt(1 / num_embeddings)).
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        ids: dict table name → int ids `[..., L]`, padded with -1.

    Returns:
        dict table name → embeddings `[..., L, embedding_dim]`.
    """

    def __init__(self, tables: dict[str, dict[str, Any]], **kwargs: Any):
        super().__init__(**kwargs)
        # A JSON round trip copies the specs and proves get_config can be
        # saved.
        self.tables = json.loads(json.dumps(dict(tables)))
        self._variables_by_table: dict[str, keras.Variable] = {}
        # Tables sharded over parameter servers (sharded_tables.py).
        self.sharded_tables: dict[str, tf.Variable] = {}
        for name, spec in self.tables.items():
            missing = [k for k in _REQUIRED_KEYS if k not in spec]
            if missing:
                raise ValueError(f"Embedding table {name!r} lacks {missing}.")
            num_embeddings = int(spec["num_embeddings"])
            embedding_dim = int(spec["embedding_dim"])
            if num_embeddings <= 0 or embedding_dim <= 0:
                raise ValueError(
                    f"Embedding table {name!r} needs positive num_embeddings "
                    f"and embedding_dim, got {num_embeddings} and "
                    f"{embedding_dim}."
                )
            if "initializer" in spec:
                initializer = keras.initializers.get(spec["initializer"])
            else:
                initializer = _default_initializer(num_embeddings)
            table = sharded_tables.create_table(
                name, (num_embeddings, embedding_dim), initializer
            )
            if table is not None:
                self.sharded_tables[name] = table
                continue
            self._variables_by_table[name] = self.add_weight(
                name=name,
                shape=(num_embeddings, embedding_dim),
                initializer=initializer,
            )
        # Every weight exists already; no input shape is needed.
        self.built = True

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        """The Keras table variables, in the order of `tables` (sharded
        ones are in `sharded_tables`)."""
        return list(self._variables_by_table.values())

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
        rows = tf.gather(table.value, tf.boolean_mask(ids, valid))
        shape = tf.concat(
            [tf.shape(ids, out_type=tf.int64), [table.shape[-1]]], axis=0
        )
        embeddings = tf.scatter_nd(tf.where(valid), rows, shape)
        return tf.cast(embeddings, self.compute_dtype)

    def call(self, ids: dict[str, Any]) -> dict[str, Any]:
        return {name: self.lookup(name, value) for name, value in ids.items()}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        # Keras wraps dict attributes in tracking types.
        config["tables"] = json.loads(json.dumps(self.tables))
        return config
