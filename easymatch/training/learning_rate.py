"""TorchEasyRec's step-based learning-rate schedules as Keras schedules."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="easymatch")
class ExponentialDecayLR(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from `warmup_learning_rate`, then base·factor^(p).

    p = (step − warmup_size) / decay_size, floored when `staircase`; the
    result never drops below `min_learning_rate`.
    """

    def __init__(
        self,
        learning_rate: float,
        decay_size: int,
        decay_factor: float = 0.95,
        staircase: bool = True,
        warmup_learning_rate: float = 0.0,
        warmup_size: int = 0,
        min_learning_rate: float = 0.0,
    ) -> None:
        if decay_size <= 0:
            raise ValueError("decay_size must be > 0")
        self.learning_rate = learning_rate
        self.decay_size = decay_size
        self.decay_factor = decay_factor
        self.staircase = staircase
        self.warmup_learning_rate = warmup_learning_rate
        self.warmup_size = warmup_size
        self.min_learning_rate = min_learning_rate

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        warmup = float(self.warmup_size)
        progress = (step - warmup) / float(self.decay_size)
        if self.staircase:
            progress = tf.floor(progress)
        decayed = tf.maximum(
            self.learning_rate * tf.pow(self.decay_factor, progress),
            self.min_learning_rate,
        )
        if self.warmup_size <= 0:
            return decayed
        warming = self.warmup_learning_rate + (
            self.learning_rate - self.warmup_learning_rate
        ) * (step / warmup)
        return tf.where(step < warmup, warming, decayed)

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "decay_size": self.decay_size,
            "decay_factor": self.decay_factor,
            "staircase": self.staircase,
            "warmup_learning_rate": self.warmup_learning_rate,
            "warmup_size": self.warmup_size,
            "min_learning_rate": self.min_learning_rate,
        }


@keras.saving.register_keras_serializable(package="easymatch")
class ManualStepLR(keras.optimizers.schedules.LearningRateSchedule):
    """`learning_rates[i-1]` once step > schedule_sizes[i-1] (bisect_left).

    Before the first boundary: the base rate, or with `warmup` a linear
    ramp from the base rate to learning_rates[0].
    """

    def __init__(
        self,
        learning_rate: float,
        schedule_sizes: Sequence[int],
        learning_rates: Sequence[float],
        warmup: bool = False,
    ) -> None:
        if not schedule_sizes or len(schedule_sizes) != len(learning_rates):
            raise ValueError(
                "schedule_sizes and learning_rates must be non-empty and of "
                "the same length"
            )
        self.learning_rate = learning_rate
        self.schedule_sizes = [int(s) for s in schedule_sizes]
        self.learning_rates = [float(r) for r in learning_rates]
        self.warmup = warmup

    def __call__(self, step: tf.Tensor) -> tf.Tensor:
        step = tf.cast(step, tf.float32)
        boundaries = tf.constant(self.schedule_sizes, tf.float32)
        index = tf.searchsorted(boundaries, tf.reshape(step, [1]), "left")[0]
        rates = tf.constant([self.learning_rate, *self.learning_rates])
        scheduled = tf.gather(rates, index)
        if not self.warmup:
            return scheduled
        ramp = self.learning_rate + (
            self.learning_rates[0] - self.learning_rate
        ) * (step / float(self.schedule_sizes[0]))
        return tf.where(index > 0, scheduled, ramp)

    def get_config(self) -> dict:
        return {
            "learning_rate": self.learning_rate,
            "schedule_sizes": self.schedule_sizes,
            "learning_rates": self.learning_rates,
            "warmup": self.warmup,
        }
