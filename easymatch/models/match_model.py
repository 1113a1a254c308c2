"""MatchModel: the two-tower training and evaluation step.

Subclasses only say how to embed users and items; this class turns the
embeddings into retrieval logits, the loss and Recall@K, and applies
`sparse_optimizer` to embedding tables and `dense_optimizer` to the rest.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from easymatch.retrieval.loss import (
    apply_temperature,
    replica_loss_share,
    weighted_loss_terms,
)
from easymatch.retrieval.recall_at_k import RecallAtK
from easymatch.retrieval.similarity import match_similarity, target_columns

HARD_NEG_INDICES = "hard_neg_indices"


class MatchModel(keras.Model):
    """Base class; subclasses implement `tower_outputs`.

    `train_step`/`test_step` take `(features, label, sample_weight)` and hold
    no Python state, so they run unchanged under any tf.distribute strategy.
    """

    def __init__(
        self,
        *,
        in_batch_negative: bool = False,
        temperature: float = 1.0,
        recall_top_ks: Sequence[int] = (),
        train_recall_top_ks: Sequence[int] = (),
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.in_batch_negative = in_batch_negative
        self.temperature = temperature
        self.recall_top_ks = list(recall_top_ks)
        self.train_recall_top_ks = list(train_recall_top_ks)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.cross_entropy_tracker = keras.metrics.Mean(
            name="softmax_cross_entropy"
        )
        self.recall_metrics = [RecallAtK(k) for k in self.recall_top_ks]
        self.train_recall_metrics = [
            RecallAtK(k, name=f"train_recall@{k}")
            for k in self.train_recall_top_ks
        ]
        self.sparse_optimizer: keras.optimizers.Optimizer | None = None

    # -- what subclasses provide -------------------------------------------
    def tower_outputs(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Returns (user_emb [B, d], item_emb [M, d], regularization loss)."""
        raise NotImplementedError

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        raise NotImplementedError

    # -- forward -----------------------------------------------------------
    def call(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> dict[str, tf.Tensor]:
        user_emb, item_emb, regularization = self.tower_outputs(
            features, training=training
        )
        similarity = match_similarity(
            user_emb,
            item_emb,
            in_batch_negative=self.in_batch_negative,
            hard_neg_indices=features.get(HARD_NEG_INDICES),
        )
        return {
            "similarity": apply_temperature(similarity, self.temperature),
            "user_tower_emb": user_emb,
            "item_tower_emb": item_emb,
            "regularization_loss": regularization,
        }

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
        logits = outputs["similarity"]
        targets = target_columns(logits, self.in_batch_negative)
        loss_sum, weight_sum, _ = weighted_loss_terms(
            logits, targets, sample_weight
        )
        share = replica_loss_share(loss_sum, weight_sum)
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context else 1
        regularization = outputs["regularization_loss"] / replicas
        # The mean over replicas of share·replicas is the global loss, which
        # is what the Mean trackers (summed over replicas) report.
        return share + regularization, share * replicas, targets

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
        features, _, sample_weight = data
        with tf.GradientTape() as tape:
            outputs = self(features, training=True)
            loss, cross_entropy, targets = self._loss(outputs, sample_weight)
        sparse, dense = self.split_variables()
        if self.sparse_optimizer is None:
            dense = sparse + dense
            sparse = []
        gradients = tape.gradient(loss, sparse + dense)
        if sparse:
            self.sparse_optimizer.apply(gradients[: len(sparse)], sparse)
        self.optimizer.apply(gradients[len(sparse) :], dense)
        self.loss_tracker.update_state(
            cross_entropy + outputs["regularization_loss"]
        )
        for metric in self.train_recall_metrics:
            metric.update_state(targets, outputs["similarity"])
        return self._results([self.loss_tracker, *self.train_recall_metrics])

    def test_step(self, data) -> dict[str, tf.Tensor]:
        features, _, sample_weight = data
        outputs = self(features, training=False)
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
            "name": self.name,
        }
