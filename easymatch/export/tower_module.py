"""One tower as a SavedModel: raw columns → feature transforms → tower.

Everything in the graph is a stock TF op (the feature transforms are built
from them, SPEC §6), so TensorFlow Serving, or any process importing only
tensorflow, can run it.
"""

from __future__ import annotations

import tensorflow as tf

from easymatch.export.signatures import (
    column_signatures,
    output_name,
    read_variables,
)
from easymatch.features import FeatureSet
from easymatch.models.match_model import MatchModel

SIDES = ("user", "item")


class TowerExport:
    """A tower's SavedModel contents and its two signatures.

    The saved module tracks the features (their lookup tables) and exactly
    the variables the tower's signatures read, so the user tower's
    SavedModel carries no item table and vice versa, whatever the model
    shares.
    """

    def __init__(
        self,
        model: MatchModel,
        features: FeatureSet,
        side: str,
        dtypes: dict[str, tf.DType],
    ) -> None:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        embed = model.embed_users if side == "user" else model.embed_items
        output = output_name(side)

        def embed_columns(columns: dict[str, tf.Tensor]) -> dict:
            embedding, _ = embed(features.transform(columns), training=False)
            return {output: tf.cast(embedding, tf.float32)}

        self.signatures = column_signatures(embed_columns, dtypes)
        self.module = tf.Module(name=f"{side}_tower")
        self.module.features = features
        self.module.tower_variables = read_variables(self.signatures)

    def save(self, directory: str) -> None:
        tf.saved_model.save(self.module, directory, signatures=self.signatures)
