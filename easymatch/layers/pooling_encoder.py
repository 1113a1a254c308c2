"""Sum or mean pooling of an embedded sequence over its positions."""

from typing import Any

import keras
from keras import ops

POOLING_TYPES = ("sum", "mean")


@keras.saving.register_keras_serializable(package="easymatch")
class PoolingEncoder(keras.layers.Layer):
    """Pools a sequence `[B, L, D]` into `[B, D]` (SPEC §3.2).

    Positions at or beyond a row's length must already be zero, as the
    EmbeddingGroup makes them; the sum runs over all (kept) positions.

    Args:
        pooling_type: `"sum"` or `"mean"`. Mean divides the sum by
            `max(min(length, max_seq_length), 1)`, so an empty sequence
            pools to zeros.
        max_seq_length: if > 0, only the first `max_seq_length` positions
            are pooled.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        sequence: float `[B, L, D]`.
        sequence_length: int `[B]`, the number of valid positions.
    """

    def __init__(
        self,
        pooling_type: str = "mean",
        max_seq_length: int = 0,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if pooling_type not in POOLING_TYPES:
            raise ValueError(
                f"pooling_type must be one of {POOLING_TYPES}, "
                f"got {pooling_type!r}."
            )
        self.pooling_type = pooling_type
        self.max_seq_length = int(max_seq_length)
        self.built = True

    def call(self, sequence: Any, sequence_length: Any) -> Any:
        if self.max_seq_length > 0:
            sequence = sequence[:, : self.max_seq_length, :]
        pooled = ops.sum(sequence, axis=1)
        if self.pooling_type == "sum":
            return pooled
        length = ops.cast(sequence_length, pooled.dtype)
        if self.max_seq_length > 0:
            length = ops.minimum(length, float(self.max_seq_length))
        return pooled / ops.expand_dims(ops.maximum(length, 1.0), -1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            pooling_type=self.pooling_type,
            max_seq_length=self.max_seq_length,
        )
        return config
