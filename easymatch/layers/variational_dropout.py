"""Feature-wise variational dropout, which learns how much each feature
of a group matters (SPEC §3.5)."""

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

_EPSILON = float(np.finfo(np.float32).eps)


@keras.saving.register_keras_serializable(package="easymatch")
class VariationalDropout(keras.layers.Layer):
    """Drops whole features of a group tensor with learned probabilities.

    `feature_p` holds one logit per feature; `sigmoid(feature_p)` is the
    feature's dropout probability. Training samples a concrete (relaxed
    Bernoulli) mask per row and feature; inference scales each feature by
    its keep probability.

    Args:
        feature_dims: the width of each feature in the group tensor, in
            order (the values of `EmbeddingGroup.group_feature_dims`).
        regularization_lambda: weight of the penalty on keep probabilities.
        temperature: temperature of the concrete relaxation.
        seed: seed of the training noise.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[B, sum(feature_dims)]`.
        training: sample noisy masks if true.

    Returns:
        `(outputs, loss)`: outputs like `inputs`, and the scalar
        `regularization_lambda / B * sum(1 - sigmoid(feature_p))`, in both
        modes.
    """

    def __init__(
        self,
        feature_dims: Sequence[int],
        regularization_lambda: float = 0.01,
        temperature: float = 0.1,
        seed: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.feature_dims = [int(dim) for dim in feature_dims]
        if not self.feature_dims or min(self.feature_dims) <= 0:
            raise ValueError(
                "feature_dims must be non-empty and positive, got "
                f"{self.feature_dims}."
            )
        self.regularization_lambda = float(regularization_lambda)
        self.temperature = float(temperature)
        self.seed = seed
        self._seed_generator = keras.random.SeedGenerator(seed)
        # Column j of the group tensor belongs to feature _feature_index[j].
        self._feature_index = np.repeat(
            np.arange(len(self.feature_dims)), self.feature_dims
        )
        self.feature_p = self.add_weight(
            name="feature_p",
            shape=(len(self.feature_dims),),
            initializer=keras.initializers.RandomNormal(0.0, 1.0),
        )
        self.built = True

    def keep_probabilities(self) -> np.ndarray:
        """`1 - sigmoid(feature_p)` per feature, for importance reports."""
        return ops.convert_to_numpy(1.0 - ops.sigmoid(self.feature_p))

    def _concrete_mask(self, dropout_p: Any, rows: Any) -> Any:
        noise = keras.random.uniform(
            (rows, len(self.feature_dims)),
            dtype=dropout_p.dtype,
            seed=self._seed_generator,
        )
        logits = (
            ops.log(dropout_p + _EPSILON)
            - ops.log(1.0 - dropout_p + _EPSILON)
            + ops.log(noise + _EPSILON)
            - ops.log(1.0 - noise + _EPSILON)
        )
        return ops.sigmoid(logits / self.temperature)

    def call(
        self, inputs: Any, training: bool | None = None
    ) -> tuple[Any, Any]:
        width = inputs.shape[-1]
        if width is not None and width != len(self._feature_index):
            raise ValueError(
                f"VariationalDropout expects {len(self._feature_index)} "
                f"columns (feature_dims {self.feature_dims}), got {width}."
            )
        dropout_p = ops.sigmoid(ops.cast(self.feature_p, inputs.dtype))
        rows = ops.shape(inputs)[0]
        if training:
            dropped = self._concrete_mask(dropout_p, rows)
        else:
            dropped = ops.expand_dims(dropout_p, 0)
        outputs = inputs * (1.0 - ops.take(dropped, self._feature_index, 1))
        loss = (
            self.regularization_lambda
            / ops.cast(rows, inputs.dtype)
            * ops.sum(1.0 - dropout_p)
        )
        return outputs, loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            feature_dims=list(self.feature_dims),
            regularization_lambda=self.regularization_lambda,
            temperature=self.temperature,
            seed=self.seed,
        )
        return config
