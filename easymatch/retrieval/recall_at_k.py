"""Recall@K over the in-training similarity matrix (SPEC §3.7, TER RecallAtK).

The eval loss metric needs no class of its own: it is keras.metrics.Mean
updated with sample_weight = B (TER's MeanMetric weighted by batch size).
"""

from typing import Any

import keras
import tensorflow as tf
from keras import ops


# Registered so a saved model or metric config restores without
# custom_objects.
@keras.saving.register_keras_serializable(package="easymatch")
class RecallAtK(keras.metrics.Metric):
    """Micro-averaged recall@K: hits in each row's top K / all positives.

    Both counters are int64 variables with sum aggregation, so replicas'
    counts add up under tf.distribute. Ties in the predictions are broken
    by ``top_k``: the lower column index ranks first (SPEC §6).

    Args:
        top_k: K; a K of at least the column count makes every positive
            a hit.
        name: metric key, ``recall@{top_k}`` by default.
        dtype: dtype of the result.
    """

    def __init__(
        self,
        top_k: int,
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        super().__init__(name=name or f"recall@{top_k}", dtype=dtype)
        self.top_k = top_k
        self.num_true_pos = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int64",
            aggregation="sum",
            name="num_true_pos",
        )
        self.num_total = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="int64",
            aggregation="sum",
            name="num_total",
        )

    def update_state(
        self,
        y_true: tf.Tensor,
        y_pred: tf.Tensor,
        sample_weight: tf.Tensor | None = None,
    ) -> None:
        """Adds one batch.

        Args:
            y_true: bool or 0/1 [B, C] (TER's form), or int [B] holding
                each row's single positive column.
            y_pred: float [B, C] similarity.
            sample_weight: ignored; TER's recall is unweighted. Accepted so
                Keras's compiled-metrics plumbing can call this method.
        """
        del sample_weight
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        num_cols = ops.shape(y_pred)[1]
        if len(y_true.shape) == 1:
            y_true = self._one_hot_targets(y_true, num_cols)
        target = ops.cast(y_true, "int64")
        # A K beyond the column count is an error for top_k; clamping keeps
        # "every positive is a hit" for narrow matrices.
        k = ops.minimum(self.top_k, num_cols)
        _, top_cols = ops.top_k(y_pred, k)
        hits = ops.take_along_axis(target, top_cols, axis=1)
        self.num_true_pos.assign_add(ops.sum(hits))
        self.num_total.assign_add(ops.sum(target))

    @staticmethod
    def _one_hot_targets(
        target_cols: tf.Tensor, num_cols: tf.Tensor | int
    ) -> tf.Tensor:
        # one_hot maps an out-of-range column to an all-zero row, which
        # would silently drop that positive from num_total.
        cols = ops.cast(target_cols, "int32")
        checks = [
            tf.debugging.assert_non_negative(
                cols, message="RecallAtK target column < 0"
            ),
            tf.debugging.assert_less(
                cols, num_cols, message="RecallAtK target column >= C"
            ),
        ]
        with tf.control_dependencies(checks):
            return ops.one_hot(cols, num_cols, dtype="int64")

    def result(self) -> tf.Tensor:
        """Returns num_true_pos / num_total, 0 before any positive."""
        # float64 keeps counts above 2**24 exact before the division.
        ratio = ops.divide_no_nan(
            ops.cast(self.num_true_pos, "float64"),
            ops.cast(self.num_total, "float64"),
        )
        return ops.cast(ratio, self.dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "top_k": self.top_k}
