"""Where logQ correction gets in-batch candidates' probabilities from.

An in-batch column's log q is the log of its item's expected count among
the batch's B positives (see ``negatives``). Two sources:

- ``train_counts`` (``ExactFrequency``): each item's exact share of the
  training rows, c_i / N, counted in one pass over the training input
  before training (``easymatch.data.item_counts``). The B positives of a
  shuffled batch are (nearly) B draws from that distribution, so the
  expected count is B · c_i / N, which exceeds 1 for an item in more than
  one row in B.
- ``streaming`` (``FrequencyEstimator``): Yi et al.'s estimate, learnt
  while training, with no pass over the data.

``docs/retrieval_eval.md`` (logQ options) has the measurements behind the
default, ``train_counts``.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from easymatch.retrieval.frequency import FrequencyEstimator

TRAIN_COUNTS = "train_counts"
STREAMING = "streaming"
SOURCES = (TRAIN_COUNTS, STREAMING)


@keras.saving.register_keras_serializable(package="easymatch")
class ExactFrequency(keras.layers.Layer):
    """log(B · c_i / N) of each item id from exact training counts.

    The counts are constants, not variables: they come from the training
    input and are kept in model_dir beside the checkpoints, so checkpoints
    do not grow with the vocabulary. An id absent from the counts (an
    item only in eval data) counts as seen once.
    """

    def __init__(
        self,
        item_ids: Sequence[int] = (),
        counts: Sequence[int] = (),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        ids = np.asarray(item_ids, np.int64).reshape(-1)
        values = np.asarray(counts, np.int64).reshape(-1)
        if ids.shape != values.shape:
            raise ValueError(
                f"item_ids and counts differ in length: {ids.size} vs "
                f"{values.size}"
            )
        if np.any(values < 1):
            raise ValueError("counts must be >= 1")
        if np.unique(ids).size != ids.size:
            raise ValueError("item_ids must be unique")
        order = np.argsort(ids, kind="stable")
        self._ids = ids[order]
        self._counts = values[order]
        self.total = int(values.sum())
        self.built = True

    @property
    def has_counts(self) -> bool:
        return self.total > 0

    def update(self, item_ids: tf.Tensor) -> tf.Operation:
        """Nothing to learn: the counts are fixed before training."""
        del item_ids
        return tf.no_op()

    def log_probability(self, item_ids: tf.Tensor) -> tf.Tensor:
        """float32 shaped like ``item_ids`` [B]: log(B · c / N)."""
        if not self.has_counts:
            raise ValueError(
                "logq_correction with candidate_probability train_counts "
                "needs the item counts of the training input; build the "
                "model with item_counts (the training loop reads them from "
                "model_dir/item_counts.parquet)"
            )
        ids = tf.cast(tf.reshape(item_ids, [-1]), tf.int64)
        keys = tf.constant(self._ids)
        place = tf.searchsorted(keys, ids)
        place = tf.minimum(place, keys.shape[0] - 1)
        found = tf.equal(tf.gather(keys, place), ids)
        count = tf.where(
            found,
            tf.cast(tf.gather(tf.constant(self._counts), place), tf.float64),
            tf.constant(1.0, tf.float64),
        )
        batch = tf.cast(tf.size(ids), tf.float64)
        log_q = tf.math.log(batch * count / float(self.total))
        return tf.reshape(tf.cast(log_q, tf.float32), tf.shape(item_ids))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(item_ids=self._ids.tolist(), counts=self._counts.tolist())
        return config


def build_candidate_probability(
    options: dict | None, item_counts: dict | None, name: str
) -> ExactFrequency | FrequencyEstimator:
    """The layer for ``options`` ({"source": ..., streaming kwargs}).

    None means ``streaming`` with FrequencyEstimator's defaults, the
    behaviour of a model built from Python without options. ``item_counts``
    ({"item_ids": int64 hashes, "counts": ints}) feeds ``train_counts``;
    without it the layer exists (so checkpoints line up) but cannot
    compute log q.
    """
    options = dict(options or {"source": STREAMING})
    source = options.pop("source", STREAMING)
    if source == TRAIN_COUNTS:
        counts = item_counts or {}
        return ExactFrequency(
            counts.get("item_ids", ()), counts.get("counts", ()), name=name
        )
    if source == STREAMING:
        return FrequencyEstimator(name=name, **options)
    raise ValueError(
        f"candidate_probability source must be one of {SOURCES}, got {source!r}"
    )
