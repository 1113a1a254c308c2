"""MatchTower: group tensor → variational dropout → MLP → projection."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from easymatch.layers.mlp import MLP
from easymatch.layers.variational_dropout import VariationalDropout

SIMILARITIES = ("INNER_PRODUCT", "COSINE")
# train_config.mixed_precision → the Keras policy of the towers' MLPs.
# Variables stay float32; FP16 would need loss scaling and has no fast CPU
# kernels, so only BF16 is offered.
MIXED_PRECISION_POLICIES = {"": "float32", "BF16": "mixed_bfloat16"}


def layer_output_dim(layer: keras.layers.Layer, shape: tuple) -> int:
    return layer.output_dim if isinstance(layer, MLP) else shape[-1]


@keras.saving.register_keras_serializable(package="easymatch")
class MatchTower(keras.layers.Layer):
    """One DSSM tower (SPEC §3.4); user and item towers never share weights.

    With no MLP the tower is the identity, and `output_dim > 0` projects the
    group tensor directly (TorchEasyRec crashes there, SPEC §6.8).
    `mixed_precision="BF16"` runs the MLP and projection in bfloat16; the
    embedding leaves the tower as float32.
    """

    def __init__(
        self,
        feature_dims: Sequence[int],
        mlp: dict | None = None,
        output_dim: int = 0,
        similarity: str = "INNER_PRODUCT",
        variational_dropout: dict | None = None,
        mixed_precision: str = "",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if similarity not in SIMILARITIES:
            raise ValueError(
                f"similarity must be one of {SIMILARITIES}, got {similarity}"
            )
        if mixed_precision not in MIXED_PRECISION_POLICIES:
            raise ValueError(
                "mixed_precision must be one of "
                f"{sorted(MIXED_PRECISION_POLICIES)}, got {mixed_precision!r}"
            )
        self.mixed_precision = mixed_precision
        policy = MIXED_PRECISION_POLICIES[mixed_precision]
        self.feature_dims = [int(d) for d in feature_dims]
        self.mlp_config = dict(mlp or {})
        self.output_dim = output_dim
        self.similarity = similarity
        self.variational_dropout_config = variational_dropout
        self.dropout = (
            VariationalDropout(self.feature_dims, **variational_dropout)
            if variational_dropout is not None and len(self.feature_dims) > 1
            else None
        )
        self.mlp = (
            MLP(**self.mlp_config, dtype=policy)
            if self.mlp_config.get("hidden_units")
            else None
        )
        self.projection = (
            MLP(hidden_units=[output_dim], activation="", dtype=policy)
            if output_dim > 0
            else None
        )

    def build(self, input_shape: tuple) -> None:
        shape = tuple(input_shape)
        for layer in (self.dropout, self.mlp, self.projection):
            if layer is not None:
                layer.build(shape)
                shape = (*shape[:-1], layer_output_dim(layer, shape))

    @property
    def embedding_dim(self) -> int:
        if self.projection is not None:
            return self.output_dim
        if self.mlp is not None:
            return self.mlp.output_dim
        return sum(self.feature_dims)

    def call(
        self, x: tf.Tensor, training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns (embedding, variational-dropout loss or 0)."""
        regularization = keras.ops.zeros((), dtype="float32")
        if self.dropout is not None:
            x, regularization = self.dropout(x, training=training)
        if self.mlp is not None:
            x = self.mlp(x, training=training)
        if self.projection is not None:
            x = self.projection(x, training=training)
        x = keras.ops.cast(x, "float32")
        if self.similarity == "COSINE":
            # F.normalize: x / max(||x||, 1e-12).
            norm = keras.ops.sqrt(
                keras.ops.sum(keras.ops.square(x), axis=-1, keepdims=True)
            )
            x = x / keras.ops.maximum(norm, 1e-12)
        return x, regularization

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            feature_dims=self.feature_dims,
            mlp=self.mlp_config,
            output_dim=self.output_dim,
            similarity=self.similarity,
            variational_dropout=self.variational_dropout_config,
            mixed_precision=self.mixed_precision,
        )
        return config
