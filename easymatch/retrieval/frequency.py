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

Two options of easymatch's, off in this layer by default (Yi et al.'s
algorithm; the config's ``streaming {}`` turns ``count_repeats`` on):
``count_repeats`` divides each gap by the id's count in the batch, so the
estimate is the expected count per batch, which exceeds 1 for an item in
several rows of a batch (plain δ ≥ 1 step caps it at 1); ``warm_start``
averages the first 1/alpha gaps of a bucket with equal weights (a running
mean) instead of letting the first gap dominate the moving average for
its first ~1/alpha sightings. Both were measured on planted data
(docs/retrieval_eval.md, logQ options).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easymatch.training.varying_gather import varying_gather
from easymatch.variable_rows import gather_rows


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
        count_repeats: bool = False,
        warm_start: bool = False,
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
        self.count_repeats = count_repeats
        self.warm_start = warm_start
        self._bits = bits
        size = (num_hashes * num_buckets,)
        self.step = self._state("step", (), "int64")
        # One flat array per kind, hash h at [h·num_buckets, ...): distributed
        # variables scatter along axis 0 only.
        self.last_seen = self._state("last_seen", size, "int64")
        self.interval = self._state("interval", size, "float32")
        self.sightings = (
            self._state("sightings", size, "int32") if warm_start else None
        )
        # Batches change size (the last of an epoch), also between the
        # steps of one call.
        self._gather = varying_gather()
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
        if context is not None and self._gather is not None:
            item_ids = self._gather([item_ids], self.step.value)[0]
        elif context is not None and context.num_replicas_in_sync > 1:
            item_ids = context.all_gather(item_ids, axis=0)
        slots = self._slots(item_ids)
        repeats = None
        if self.count_repeats:
            slots, _, repeats = tf.unique_with_counts(slots)
        step = self.step.value.assign_add(1)
        last = gather_rows(self.last_seen, slots)
        interval = gather_rows(self.interval, slots)
        gap = tf.cast(step - last, tf.float32)
        if repeats is not None:
            gap = gap / tf.cast(repeats, tf.float32)
        alpha = tf.constant(self.alpha, tf.float32)
        updates = []
        if self.sightings is not None:
            seen = gather_rows(self.sightings, slots) + 1
            alpha = tf.maximum(alpha, 1.0 / tf.cast(seen, tf.float32))
            updates.append(
                self.sightings.value.scatter_update(
                    tf.IndexedSlices(seen, slots)
                )
            )
        # The first sighting starts the average at the steps so far, rather
        # than pulling it towards a made-up prior.
        new = tf.where(last > 0, (1.0 - alpha) * interval + alpha * gap, gap)
        # An id repeated in the batch writes the same value at each place.
        return tf.group(
            *updates,
            self.interval.value.scatter_update(tf.IndexedSlices(new, slots)),
            self.last_seen.value.scatter_update(
                tf.IndexedSlices(tf.fill(tf.shape(slots), step), slots)
            ),
        )

    def log_probability(self, item_ids: tf.Tensor) -> tf.Tensor:
        """float32, shaped like ``item_ids``: log(1 / δ), at most 0 unless
        ``count_repeats``.

        An id never seen counts as seen once in step + 1 steps.
        """
        shape = tf.shape(item_ids)
        interval = gather_rows(self.interval, self._slots(item_ids))
        unseen = tf.cast(self.step.value + 1, tf.float32)
        interval = tf.where(interval > 0, interval, unseen)
        interval = tf.reduce_max(
            tf.reshape(interval, [self.num_hashes, -1]), axis=0
        )
        if not self.count_repeats:
            interval = tf.maximum(interval, 1.0)
        return -tf.math.log(tf.reshape(interval, shape))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            num_buckets=self.num_buckets,
            num_hashes=self.num_hashes,
            alpha=self.alpha,
            count_repeats=self.count_repeats,
            warm_start=self.warm_start,
        )
        return config
