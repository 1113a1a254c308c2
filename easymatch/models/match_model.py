"""MatchModel: the two-tower training and evaluation step.

Subclasses only say how to embed users and items; this class turns the
embeddings into retrieval logits, the loss and Recall@K, and applies
`sparse_optimizer` to embedding tables and `dense_optimizer` to the rest.

The logits follow the loss chain of `easymatch.retrieval.loss`: the simple
block (in-batch, sampled or mixed) is divided by the temperature, copies of
a row's positive are masked (`remove_accidental_hits`), logQ is subtracted
(`logq_correction`), then the hard-negative block is appended. Masking
comes first so that Recall@K ranks the masked, uncorrected scores.
`mixed_negatives` and the two options are easymatch's, off by default, so
TorchEasyRec configs train TorchEasyRec's loss.
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
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    ITEM_ID,
    NEG_ITEM_ID,
    NEG_LOG_Q,
    require,
)

# Reserved keys of train_step's logs, read by the training loop.
FINITE = "__finite__"
LOSS_TERMS = "__loss_terms__"


class MatchModel(keras.Model):
    """Base class; subclasses implement `tower_outputs`.

    `train_step`/`test_step` take `(features, side_inputs, label,
    sample_weight)` and hold no Python state, so they run unchanged under
    any tf.distribute strategy.
    """

    def __init__(
        self,
        *,
        in_batch_negative: bool = False,
        temperature: float = 1.0,
        recall_top_ks: Sequence[int] = (),
        train_recall_top_ks: Sequence[int] = (),
        train_recall_decays: Sequence[Sequence[float]] = (),
        logq_correction: bool = False,
        remove_accidental_hits: bool = False,
        mixed_negatives: bool = False,
        candidate_probability: dict | None = None,
        item_counts: dict | None = None,
        gradient_clipping: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        check_temperature(temperature)
        self.in_batch_negative = in_batch_negative
        self.mixed_negatives = mixed_negatives
        self.mode = negative_mode(in_batch_negative, mixed_negatives)
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
        self.temperature = temperature
        # {"clipping_type": "none"|"norm"|"value", "max_gradient": float}
        self.gradient_clipping = gradient_clipping
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
        self.sparse_optimizer: keras.optimizers.Optimizer | None = None
        self._float_inputs: tuple[str, ...] = ()

    # -- what subclasses provide -------------------------------------------
    def tower_outputs(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Returns (user_emb [B, d], item_emb [M, d], regularization loss)."""
        raise NotImplementedError

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        raise NotImplementedError

    def tower_feature_names(self, side: str) -> list[str]:
        """The features the "user" or "item" tower reads (export asks)."""
        raise NotImplementedError

    # -- forward -----------------------------------------------------------
    def call(
        self,
        features: dict[str, tf.Tensor],
        side_inputs: dict[str, tf.Tensor] | None = None,
        training: bool = False,
    ) -> dict[str, tf.Tensor]:
        """Towers, then `similarity` (scores / temperature with accidental
        hits masked, what Recall@K ranks) and `logits` (the same with logQ
        subtracted, what the loss takes). `side_inputs`: what the loss
        reads besides the features (`easymatch.side_inputs`)."""
        user_emb, item_emb, regularization = self.tower_outputs(
            features, training=training
        )
        similarity, logits = self.retrieval_logits(
            user_emb, item_emb, side_inputs or {}
        )
        return {
            "similarity": similarity,
            "logits": logits,
            "user_tower_emb": user_emb,
            "item_tower_emb": item_emb,
            "regularization_loss": regularization,
        }

    def retrieval_logits(
        self,
        user_emb: tf.Tensor,
        item_emb: tf.Tensor,
        side_inputs: dict[str, tf.Tensor],
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(similarity, logits), both [B, C + K]; see the module doc."""
        simple, hard = similarity_blocks(
            user_emb, item_emb, self.mode, side_inputs.get(HARD_NEG_INDICES)
        )
        simple = apply_temperature(simple, self.temperature)
        num_columns = tf.shape(simple)[1]
        if self.remove_accidental_hits:
            option = "remove_accidental_hits"
            item_ids = require(side_inputs, ITEM_ID, option)
            candidates = candidate_item_ids(
                self.mode,
                num_columns,
                item_ids,
                self._negatives(side_inputs, NEG_ITEM_ID, option),
            )
            simple = mask_accidental_hits(
                simple,
                target_columns(simple, self.mode != SAMPLED),
                item_ids,
                candidates,
            )
        logits = simple
        if self.logq_correction:
            logits = logq_correction(
                simple, self._candidate_log_q(side_inputs, num_columns)
            )
        if hard is None:
            return simple, logits
        hard = apply_temperature(hard, self.temperature)
        return (
            append_hard_negatives(simple, hard),
            append_hard_negatives(logits, hard),
        )

    def _candidate_log_q(
        self, side_inputs: dict[str, tf.Tensor], num_columns: tf.Tensor
    ) -> tf.Tensor:
        in_batch_log_q = None
        if self.frequency_estimator is not None:
            in_batch_log_q = self.frequency_estimator.log_probability(
                require(side_inputs, ITEM_ID, "logq_correction")
            )
        neg_log_q = self._negatives(side_inputs, NEG_LOG_Q, "logq_correction")
        return candidate_log_q(
            self.mode, num_columns, in_batch_log_q, neg_log_q
        )

    def _negatives(
        self, side_inputs: dict[str, tf.Tensor], key: str, option: str
    ) -> tf.Tensor | None:
        """A sampler's tensor: needed unless in-batch mode has no sampler."""
        if self.mode == IN_BATCH:
            return side_inputs.get(key)
        return require(side_inputs, key, option)

    def _loss(
        self,
        outputs: dict[str, tf.Tensor],
        sample_weight: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Returns (this replica's share of the loss, global CE, targets).

        SPEC's mean(l*w)/mean(w) over the global batch is sum(l*w)/sum(w);
        each replica contributes its sum(l*w) over the global sum(w), so
        the summed replica gradients are the global gradient.
        """
        logits = outputs["logits"]
        targets = target_columns(logits, self.mode != SAMPLED)
        loss_sum, weight_sum, _ = weighted_loss_terms(
            logits, targets, sample_weight
        )
        share = replica_loss_share(loss_sum, weight_sum)
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        regularization = outputs["regularization_loss"] / replicas
        # The replicas' shares add up to the global loss (share·replicas is
        # it only when every replica has as many rows: not at the end of
        # an eval input).
        global_loss = share
        if replicas > 1:
            global_loss = context.all_reduce(
                tf.distribute.ReduceOp.SUM, tf.stop_gradient(share)
            )
        return share + regularization, global_loss, targets

    # -- training ----------------------------------------------------------
    def compile(
        self,
        dense_optimizer: keras.optimizers.Optimizer,
        sparse_optimizer: keras.optimizers.Optimizer | None = None,
        **kwargs,
    ) -> None:
        """Embedding tables use `sparse_optimizer` (default: the dense one)."""
        super().compile(optimizer=dense_optimizer, **kwargs)
        self.sparse_optimizer = sparse_optimizer

    def split_variables(
        self,
    ) -> tuple[list[keras.Variable], list[keras.Variable]]:
        """(embedding tables, every other trainable variable)."""
        sparse_ids = {id(v) for v in self.embedding_variables}
        sparse = [v for v in self.trainable_variables if id(v) in sparse_ids]
        dense = [v for v in self.trainable_variables if id(v) not in sparse_ids]
        return sparse, dense

    def build_optimizers(self) -> None:
        """Creates slot variables now, so a checkpoint can restore them."""
        sparse, dense = self.split_variables()
        if self.sparse_optimizer is None:
            self.optimizer.build(sparse + dense)
            return
        self.optimizer.build(dense)
        self.sparse_optimizer.build(sparse)

    def train_step(self, data) -> dict[str, tf.Tensor]:
        features, side_inputs, _, sample_weight = unpack_batch(data)
        if self.frequency_estimator is not None:
            # Before the forward pass, which reads the estimate: a batch's
            # items count as seen (Yi et al.'s order).
            self.frequency_estimator.update(
                require(side_inputs, ITEM_ID, "logq_correction")
            )
        with tf.GradientTape() as tape:
            outputs = self(features, side_inputs, training=True)
            loss, cross_entropy, targets = self._loss(outputs, sample_weight)
        sparse, dense = self.split_variables()
        if self.sparse_optimizer is None:
            dense = sparse + dense
            sparse = []
        gradients = self._clip(tape.gradient(loss, sparse + dense))
        checks = self._finite_checks(
            cross_entropy, outputs["regularization_loss"], gradients, features
        )
        if sparse:
            self.sparse_optimizer.apply(gradients[: len(sparse)], sparse)
        self.optimizer.apply(gradients[len(sparse) :], dense)
        self.loss_tracker.update_state(
            cross_entropy + outputs["regularization_loss"]
        )
        for metric in self.train_recall_metrics:
            metric.update_state(targets, outputs["similarity"])
        logs = self._results([self.loss_tracker, *self.train_recall_metrics])
        logs.update(checks)
        return logs

    def _finite_checks(
        self,
        cross_entropy: tf.Tensor,
        regularization: tf.Tensor,
        gradients: list,
        features: dict[str, tf.Tensor],
    ) -> dict[str, tf.Tensor]:
        """This step's loss terms and, in `finite_check_names` order,
        whether each loss term, gradient and float input is finite.

        The loop stops at the first step where one is not (before any
        checkpoint of its weights), and names it.
        """
        self._float_inputs = tuple(
            sorted(
                key
                for key, value in features.items()
                if value.dtype.is_floating
            )
        )
        tensors = [cross_entropy, regularization]
        tensors += [
            g.values if isinstance(g, tf.IndexedSlices) else g
            for g in gradients
        ]
        tensors += [features[key] for key in self._float_inputs]
        flags = [
            tf.constant(True)
            if t is None  # a variable this batch did not reach
            else tf.reduce_all(tf.math.is_finite(t))
            for t in tensors
        ]
        return {
            FINITE: tf.cast(tf.stack(flags), tf.int32),
            LOSS_TERMS: tf.stack(
                [
                    tf.cast(cross_entropy, tf.float32),
                    tf.cast(regularization, tf.float32),
                ]
            ),
        }

    def finite_check_names(self) -> list[str]:
        """What each flag of a training step's FINITE log checks."""
        sparse, dense = self.split_variables()
        names = ["loss softmax_cross_entropy", "loss regularization"]
        names += [f"gradient of {v.path}" for v in sparse + dense]
        return names + [f'input feature "{key}"' for key in self._float_inputs]

    def _clip(self, gradients: list) -> list:
        """train_config.grad_clipping over all gradients, dense and sparse.

        "norm" is torch's clip_grad_norm_ (one global L2 norm); row-sparse
        gradients count repeated ids separately, before they are summed.
        """
        clipping = self.gradient_clipping
        if not clipping or clipping["clipping_type"] == "none":
            return gradients
        limit = clipping["max_gradient"]
        if clipping["clipping_type"] == "norm":
            return tf.clip_by_global_norm(gradients, limit)[0]
        return [
            tf.IndexedSlices(
                tf.clip_by_value(g.values, -limit, limit),
                g.indices,
                g.dense_shape,
            )
            if isinstance(g, tf.IndexedSlices)
            else tf.clip_by_value(g, -limit, limit)
            for g in gradients
        ]

    def test_step(self, data) -> dict[str, tf.Tensor]:
        features, side_inputs, _, sample_weight = unpack_batch(data)
        outputs = self(features, side_inputs, training=False)
        _, cross_entropy, targets = self._loss(outputs, sample_weight)
        self.cross_entropy_tracker.update_state(
            cross_entropy,
            sample_weight=tf.cast(tf.shape(sample_weight)[0], tf.float32),
        )
        for metric in self.recall_metrics:
            metric.update_state(targets, outputs["similarity"])
        return self._results([self.cross_entropy_tracker, *self.recall_metrics])

    @staticmethod
    def _results(metrics) -> dict[str, tf.Tensor]:
        return {metric.name: metric.result() for metric in metrics}

    def get_config(self) -> dict:
        return {
            "in_batch_negative": self.in_batch_negative,
            "temperature": self.temperature,
            "recall_top_ks": self.recall_top_ks,
            "train_recall_top_ks": self.train_recall_top_ks,
            "train_recall_decays": self.train_recall_decays,
            "logq_correction": self.logq_correction,
            "remove_accidental_hits": self.remove_accidental_hits,
            "mixed_negatives": self.mixed_negatives,
            "candidate_probability": self.candidate_probability,
            "item_counts": self.item_counts,
            "gradient_clipping": self.gradient_clipping,
            "name": self.name,
        }


def unpack_batch(data) -> tuple:
    """(features, side_inputs, label, sample_weight) from the input
    pipeline's four parts, or from Keras fit's (x, label, sample_weight)
    with x the features or (features, side_inputs)."""
    if len(data) == 4:
        return tuple(data)
    x, label, sample_weight = data
    features, side_inputs = x if isinstance(x, tuple | list) else (x, {})
    return features, side_inputs, label, sample_weight
