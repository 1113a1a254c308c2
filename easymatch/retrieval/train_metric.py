"""TorchEasyRec's moving-average training metrics (`train_metrics`).

tzrec/metrics/train_metric_wrapper.py: every step updates the wrapped
metric; every `decay_step` steps the window's value v is taken and the
wrapped metric reset, and the reported value becomes v the first time,
then `decay_rate · value + (1 − decay_rate) · v`. Before the first window
ends the value is 0. Resetting this metric (the loop does so after each
log line) keeps the moving average, as TorchEasyRec never resets it.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="easymatch")
class DecayedMetric(keras.metrics.Metric):
    """`metric`'s value over windows of `decay_step` updates, averaged
    with weight `decay_rate` on the past."""

    def __init__(
        self,
        metric: keras.metrics.Metric,
        decay_rate: float = 0.9,
        decay_step: int = 100,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name or metric.name, **kwargs)
        if not 0 <= decay_rate <= 1 or decay_step < 1:
            raise ValueError(
                f"decay_rate must be in [0, 1] and decay_step >= 1, got "
                f"{decay_rate}, {decay_step}"
            )
        self.metric = metric
        self.decay_rate = decay_rate
        self.decay_step = decay_step
        self.value = self.add_variable(
            shape=(), initializer="zeros", name="value"
        )
        self.steps = self.add_variable(
            shape=(), initializer="zeros", dtype="int64", name="steps"
        )

    def update_state(self, *args: Any, **kwargs: Any) -> None:
        self.metric.update_state(*args, **kwargs)
        self.steps.assign_add(1)

        def roll() -> tf.Tensor:
            window = tf.cast(self.metric.result(), self.value.dtype)
            rate = tf.constant(self.decay_rate, self.value.dtype)
            averaged = rate * self.value + (1 - rate) * window
            self.value.assign(
                tf.where(tf.equal(self.value, 0), window, averaged)
            )
            self.metric.reset_state()
            return tf.constant(True)

        tf.cond(
            tf.equal(self.steps % self.decay_step, 0),
            roll,
            lambda: tf.constant(False),
        )

    def result(self) -> tf.Tensor:
        return tf.identity(self.value)

    def reset_state(self) -> None:
        """Keeps the moving average (TorchEasyRec never resets it)."""

    def get_config(self) -> dict[str, Any]:
        return {
            "metric": keras.saving.serialize_keras_object(self.metric),
            "decay_rate": self.decay_rate,
            "decay_step": self.decay_step,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> DecayedMetric:
        config = dict(config)
        config["metric"] = keras.saving.deserialize_keras_object(
            config["metric"]
        )
        return cls(**config)
