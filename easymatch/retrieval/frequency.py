"""Streaming estimate of how often each item appears in a training batch.

Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling for Large Corpus
Item Recommendations", algorithm 2: per hash bucket, keep the step an item
was last seen and a moving average δ of the steps between sightings;
1/δ estimates the probability that the item is in a batch, the in-batch
sampling probability its logQ correction needs. Several hash functions
bound the effect of collisions: a collision only shortens the observed
intervals, so the largest δ over the hashes is the best estimate.

State lives in non-trainable variables that checkpoints keep, so a
resumed run continues the same estimate. Under a tf.distribute strategy
every replica gathers all replicas' ids and computes the same update; the
variables take the first replica's (``only_first_replica``).
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="easymatch")
class FrequencyEstimator(keras.layers.Layer):
    """Per item id (int64 hash), log of its estimated per-batch probability.

    Ids must be uniform 63-bit hashes (the pipeline's item-id fingerprints):
    hash function h takes bits [h·b, (h+1)·b) with b = log2(num_buckets).
    """

    def __init__(
        self,
        num_buckets: int = 1 << 20,
        num_hashes: int = 2,
        alpha: float = 0.01,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        bits = num_buckets.bit_length() - 1
        if num_buckets < 2 or num_buckets != 1 << bits:
            raise ValueError(
                f"num_buckets must be a power of two >= 2, got {num_buckets}"
            )
        if num_hashes < 1 or num_hashes * bits > 63:
            raise ValueError(
                f"num_hashes * log2(num_buckets) must be in [1, 63], got "
                f"{num_hashes} * {bits}"
            )
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.num_buckets = num_buckets
        self.num_hashes = num_hashes
        self.alpha = alpha
        self._bits = bits
        size = (num_hashes * num_buckets,)
        self.step = self._state("step", (), "int64")
        # One flat array per kind, hash h at [h·num_buckets, ...): distributed
        # variables scatter along axis 0 only.
        self.last_seen = self._state("last_seen", size, "int64")
        self.interval = self._state("interval", size, "float32")
        self.built = True

    def _state(self, name: str, shape: tuple, dtype: str) -> keras.Variable:
        return self.add_weight(
            shape=shape,
            dtype=dtype,
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
            name=name,
        )

    def _slots(self, item_ids: tf.Tensor) -> tf.Tensor:
        """int64 [num_hashes · n]: each id's bucket under every hash."""
        ids = tf.cast(tf.reshape(item_ids, [-1]), tf.int64)
        mask = tf.constant(self.num_buckets - 1, tf.int64)
        slots = [
            tf.bitwise.bitwise_and(
                tf.bitwise.right_shift(ids, self._bits * h), mask
            )
            + h * self.num_buckets
            for h in range(self.num_hashes)
        ]
        return tf.concat(slots, axis=0)

    def update(self, item_ids: tf.Tensor) -> tf.Operation:
        """Records one training step that saw ``item_ids`` (this replica's)."""
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            item_ids = context.all_gather(item_ids, axis=0)
        slots = self._slots(item_ids)
        step = self.step.value.assign_add(1)
        last = tf.gather(self.last_seen.value, slots)
        interval = tf.gather(self.interval.value, slots)
        gap = tf.cast(step - last, tf.float32)
        # The first sighting starts the average at the steps so far, rather
        # than pulling it towards a made-up prior.
        new = tf.where(
            last > 0, (1.0 - self.alpha) * interval + self.alpha * gap, gap
        )
        # An id repeated in the batch writes the same value at each place.
        return tf.group(
            self.interval.value.scatter_update(tf.IndexedSlices(new, slots)),
            self.last_seen.value.scatter_update(
                tf.IndexedSlices(tf.fill(tf.shape(slots), step), slots)
            ),
        )

    def log_probability(self, item_ids: tf.Tensor) -> tf.Tensor:
        """float32, shaped like ``item_ids``: log(1 / δ), at most 0.

        An id never seen counts as seen once in step + 1 steps.
        """
        shape = tf.shape(item_ids)
        interval = tf.gather(self.interval.value, self._slots(item_ids))
        unseen = tf.cast(self.step.value + 1, tf.float32)
        interval = tf.where(interval > 0, interval, unseen)
        interval = tf.reduce_max(
            tf.reshape(interval, [self.num_hashes, -1]), axis=0
        )
        return -tf.math.log(tf.reshape(tf.maximum(interval, 1.0), shape))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_buckets=self.num_buckets,
            num_hashes=self.num_hashes,
            alpha=self.alpha,
        )
        return config
