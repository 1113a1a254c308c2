"""Retrieval: the task from tower embeddings to the loss and Recall@K.

TFRS `tasks.Retrieval` style: MatchModel's towers embed users and items,
and this layer, fed the embeddings and explicit tensors (the positives'
item ids, the negatives' item ids and log q, the hard negatives' indices,
sample weights), owns the rest: similarity blocks, the loss chain, the
in-batch frequency estimator, the loss trackers, Recall@K and the
decayed train metrics.

The loss chain, one small step each (`easymatch.retrieval.loss`): the
simple block (in-batch, sampled or mixed) is divided by the temperature,
copies of a row's positive are masked (`remove_accidental_hits`), logQ is
subtracted (`logq_correction`), then the hard-negative block (divided by
the temperature, neither masked nor corrected) is appended and the
weighted softmax cross entropy taken. Masking comes first so that
Recall@K ranks the masked, uncorrected scores. `mixed_negatives` and the
two options are easymatch's, off by default, so TorchEasyRec configs
train TorchEasyRec's loss.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from easymatch.retrieval.candidate_probability import (
    build_candidate_probability,
)
from easymatch.retrieval.loss import (
    append_hard_negatives,
    apply_temperature,
    check_temperature,
    logq_correction,
    mask_accidental_hits,
    replica_loss_share,
    weighted_loss_terms,
)
from easymatch.retrieval.negatives import (
    candidate_item_ids,
    candidate_log_q,
    negative_mode,
)
from easymatch.retrieval.recall_at_k import RecallAtK
from easymatch.retrieval.similarity import (
    IN_BATCH,
    SAMPLED,
    similarity_blocks,
    target_columns,
)
from easymatch.retrieval.train_metric import DecayedMetric
from easymatch.side_inputs import ITEM_ID, NEG_ITEM_ID, NEG_LOG_Q, required

# The constructor's options: a MatchModel takes them flat and hands them on.
OPTIONS = (
    "in_batch_negative",
    "mixed_negatives",
    "temperature",
    "logq_correction",
    "remove_accidental_hits",
    "candidate_probability",
    "item_counts",
    "recall_top_ks",
    "train_recall_top_ks",
    "train_recall_decays",
)


@keras.saving.register_keras_serializable(package="easymatch")
class Retrieval(keras.layers.Layer):
    """Loss, logits and metrics of one batch of a two-tower model.

    Checkpoints key this layer's sub-layers as its parent's
    (`checkpoint_inline`, easymatch.checkpoint.variables): the frequency
    estimator keeps the key it had before the task existed.
    """

    checkpoint_inline = True

    def __init__(
        self,
        *,
        in_batch_negative: bool = False,
        mixed_negatives: bool = False,
        temperature: float = 1.0,
        logq_correction: bool = False,
        remove_accidental_hits: bool = False,
        candidate_probability: dict | None = None,
        item_counts: dict | None = None,
        recall_top_ks: Sequence[int] = (),
        train_recall_top_ks: Sequence[int] = (),
        train_recall_decays: Sequence[Sequence[float]] = (),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.in_batch_negative = in_batch_negative
        self.mixed_negatives = mixed_negatives
        self.mode = negative_mode(in_batch_negative, mixed_negatives)
        self.temperature = check_temperature(temperature)
        self.logq_correction = logq_correction
        self.remove_accidental_hits = remove_accidental_hits
        # Only in-batch candidates need item frequencies; sampled ones come
        # with the sampler's. `candidate_probability` chooses exact training
        # counts (`item_counts`) or the streaming estimate.
        self.candidate_probability = candidate_probability
        self.item_counts = item_counts
        self.frequency_estimator = (
            build_candidate_probability(
                candidate_probability, item_counts, "frequency_estimator"
            )
            if logq_correction and self.mode != SAMPLED
            else None
        )
        self.recall_top_ks = list(recall_top_ks)
        self.train_recall_top_ks = list(train_recall_top_ks)
        # (decay_rate, decay_step) per train metric; TorchEasyRec's
        # defaults when not given.
        self.train_recall_decays = [
            [float(rate), int(step)] for rate, step in train_recall_decays
        ] or [[0.9, 100]] * len(self.train_recall_top_ks)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.cross_entropy_tracker = keras.metrics.Mean(
            name="softmax_cross_entropy"
        )
        self.recall_metrics = [RecallAtK(k) for k in self.recall_top_ks]
        self.train_recall_metrics = [
            DecayedMetric(RecallAtK(k), rate, step, name=f"train_recall@{k}")
            for k, (rate, step) in zip(
                self.train_recall_top_ks, self.train_recall_decays, strict=True
            )
        ]
        self.built = True

    def call(
        self,
        user_emb: tf.Tensor,
        item_emb: tf.Tensor,
        *,
        sample_weight: tf.Tensor | None = None,
        regularization_loss: tf.Tensor | float = 0.0,
        training: bool = False,
        compute_metrics: bool = True,
        **candidates: tf.Tensor | None,
    ) -> dict:
        """One batch's loss; updates the metrics of `training`'s kind
        unless `compute_metrics` is false.

        `candidates`: the tensors `logits` takes (`item_ids`,
        `negative_item_ids`, `negative_log_q`, `hard_neg_indices`).
        Training first counts the batch's items in the frequency
        estimator, before logQ reads it (Yi et al.'s order).

        Returns `loss` (this replica's share, what to differentiate),
        `cross_entropy` (the global one), `similarity` and `logits` (both
        [B, C + K], see `logits`) and `logs` (the metrics' results).
        """
        if training and self.frequency_estimator is not None:
            self.frequency_estimator.update(
                required(candidates.get("item_ids"), ITEM_ID, "logq_correction")
            )
        similarity, logits = self.logits(user_emb, item_emb, **candidates)
        regularization = tf.cast(regularization_loss, tf.float32)
        loss, cross_entropy = self.compute_loss(
            logits, sample_weight, regularization
        )
        outputs = {
            "loss": loss,
            "cross_entropy": cross_entropy,
            "similarity": similarity,
            "logits": logits,
            "logs": {},
        }
        if not compute_metrics:
            return outputs
        targets = target_columns(similarity, self.mode != SAMPLED)
        if training:
            self.loss_tracker.update_state(cross_entropy + regularization)
            metrics = [self.loss_tracker, *self.train_recall_metrics]
        else:
            batch_size = tf.cast(tf.shape(similarity)[0], tf.float32)
            self.cross_entropy_tracker.update_state(
                cross_entropy, sample_weight=batch_size
            )
            metrics = [self.cross_entropy_tracker, *self.recall_metrics]
        for metric in metrics[1:]:
            metric.update_state(targets, similarity)
        outputs["logs"] = {metric.name: metric.result() for metric in metrics}
        return outputs

    # -- the loss chain ----------------------------------------------------
    def logits(
        self,
        user_emb: tf.Tensor,
        item_emb: tf.Tensor,
        *,
        item_ids: tf.Tensor | None = None,
        negative_item_ids: tf.Tensor | None = None,
        negative_log_q: tf.Tensor | None = None,
        hard_neg_indices: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(similarity, logits), both [B, C + K]: the scores divided by the
        temperature with accidental hits masked (what Recall@K ranks), and
        the same with logQ subtracted (what the loss takes)."""
        simple, hard = similarity_blocks(
            user_emb, item_emb, self.mode, hard_neg_indices
        )
        simple = apply_temperature(simple, self.temperature)
        if self.remove_accidental_hits:
            simple = self._mask_hits(simple, item_ids, negative_item_ids)
        logits = simple
        if self.logq_correction:
            log_q = self._log_q(simple, item_ids, negative_log_q)
            logits = logq_correction(simple, log_q)
        if hard is None:
            return simple, logits
        hard = apply_temperature(hard, self.temperature)
        return (
            append_hard_negatives(simple, hard),
            append_hard_negatives(logits, hard),
        )

    def _mask_hits(
        self,
        simple: tf.Tensor,
        item_ids: tf.Tensor | None,
        negative_item_ids: tf.Tensor | None,
    ) -> tf.Tensor:
        option = "remove_accidental_hits"
        item_ids = required(item_ids, ITEM_ID, option)
        candidates = candidate_item_ids(
            self.mode,
            tf.shape(simple)[1],
            item_ids,
            self._negatives(negative_item_ids, NEG_ITEM_ID, option),
        )
        targets = target_columns(simple, self.mode != SAMPLED)
        return mask_accidental_hits(simple, targets, item_ids, candidates)

    def _log_q(
        self,
        simple: tf.Tensor,
        item_ids: tf.Tensor | None,
        negative_log_q: tf.Tensor | None,
    ) -> tf.Tensor:
        option = "logq_correction"
        in_batch_log_q = None
        if self.frequency_estimator is not None:
            in_batch_log_q = self.frequency_estimator.log_probability(
                required(item_ids, ITEM_ID, option)
            )
        return candidate_log_q(
            self.mode,
            tf.shape(simple)[1],
            in_batch_log_q,
            self._negatives(negative_log_q, NEG_LOG_Q, option),
        )

    def _negatives(
        self, value: tf.Tensor | None, key: str, option: str
    ) -> tf.Tensor | None:
        """A sampler's tensor: needed unless in-batch mode has no sampler."""
        if self.mode == IN_BATCH:
            return value
        return required(value, key, option)

    def compute_loss(
        self,
        logits: tf.Tensor,
        sample_weight: tf.Tensor | None = None,
        regularization_loss: tf.Tensor | float = 0.0,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(this replica's share of the loss, the global cross entropy).

        SPEC's mean(l*w)/mean(w) over the global batch is sum(l*w)/sum(w);
        each replica contributes its sum(l*w) over the global sum(w), so
        the summed replica gradients are the global gradient. The towers'
        `regularization_loss`, whole on every replica, joins the share
        divided by the replica count.
        """
        targets = target_columns(logits, self.mode != SAMPLED)
        loss_sum, weight_sum, _ = weighted_loss_terms(
            logits, targets, sample_weight
        )
        share = replica_loss_share(loss_sum, weight_sum)
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        # The replicas' shares add up to the global loss (share·replicas is
        # it only when every replica has as many rows: not at the end of
        # an eval input).
        global_loss = share
        if replicas > 1:
            global_loss = context.all_reduce(
                tf.distribute.ReduceOp.SUM, tf.stop_gradient(share)
            )
        return share + regularization_loss / replicas, global_loss

    def options(self) -> dict:
        """The constructor's options (OPTIONS), as given."""
        return {name: getattr(self, name) for name in OPTIONS}

    def get_config(self) -> dict:
        return {**super().get_config(), **self.options()}
