"""MatchModel: the two towers, their optimizers and the training step.

Subclasses only say how to embed users and items. The Retrieval task
(`easymatch.retrieval.task`) turns the embeddings into the loss, logits
and Recall@K; this class reads the batch's side inputs
(`easymatch.side_inputs`) and hands the task explicit tensors, applies
`sparse_optimizer` to embedding tables and `dense_optimizer` to the rest,
clips gradients and checks that each step is finite.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from easymatch.retrieval.task import OPTIONS, Retrieval
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    ITEM_ID,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)

# Reserved keys of train_step's logs, read by the training loop.
FINITE = "__finite__"
LOSS_TERMS = "__loss_terms__"


class MatchModel(keras.Model):
    """Base class; subclasses implement `tower_outputs`.

    Takes `gradient_clipping` and, as flat keywords, the Retrieval task's
    options (`retrieval/task.py:OPTIONS`: `in_batch_negative`,
    `temperature`, `logq_correction`, ...). `train_step`/`test_step` take
    `(features, side_inputs, label, sample_weight)` and hold no Python
    state, so they run unchanged under any tf.distribute strategy.
    """

    def __init__(
        self, *, gradient_clipping: dict | None = None, **kwargs
    ) -> None:
        options = {key: kwargs.pop(key) for key in OPTIONS if key in kwargs}
        super().__init__(**kwargs)
        # The first sub-layer: checkpoints key the task's estimator first,
        # as they did before the task existed (retrieval/task.py).
        self.task = Retrieval(**options, name="retrieval")
        # {"clipping_type": "none"|"norm"|"value", "max_gradient": float}
        self.gradient_clipping = gradient_clipping
        self.sparse_optimizer: keras.optimizers.Optimizer | None = None
        # Under parameter-server training: the tables sharded over ps
        # tasks and their optimizer (training/sharded_sparse.py).
        self.sharded_sparse = None
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
        """Towers, then the task's `similarity` (what Recall@K ranks) and
        `logits` (what the loss takes). `side_inputs`: what the loss
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
        """(similarity, logits), both [B, C + K]: `Retrieval.logits`."""
        return self.task.logits(user_emb, item_emb, **task_inputs(side_inputs))

    def task_step(
        self, data, *, training: bool, compute_metrics: bool = True
    ) -> tuple:
        """(features, regularization loss, the task's outputs) of a batch:
        towers, then the Retrieval task (`Retrieval.call`)."""
        features, side_inputs, _, sample_weight = unpack_batch(data)
        user_emb, item_emb, regularization = self.tower_outputs(
            features, training=training
        )
        outputs = self.task(
            user_emb,
            item_emb,
            **task_inputs(side_inputs),
            sample_weight=sample_weight,
            regularization_loss=regularization,
            training=training,
            compute_metrics=compute_metrics,
        )
        return features, regularization, outputs

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
        with tf.GradientTape() as tape:
            features, regularization, outputs = self.task_step(
                data, training=True
            )
        sparse, dense = self.split_variables()
        if self.sparse_optimizer is None:
            dense = sparse + dense
            sparse = []
        gradients = self.clip_gradients(
            tape.gradient(outputs["loss"], sparse + dense)
        )
        checks = self.finite_checks(
            outputs["cross_entropy"], regularization, gradients, features
        )
        if sparse:
            self.sparse_optimizer.apply(gradients[: len(sparse)], sparse)
        self.optimizer.apply(gradients[len(sparse) :], dense)
        return {**outputs["logs"], **checks}

    def finite_checks(
        self,
        cross_entropy: tf.Tensor,
        regularization: tf.Tensor,
        gradients: list,
        features: dict[str, tf.Tensor],
    ) -> dict[str, tf.Tensor]:
        """This step's loss terms and, in `finite_check_names` order,
        whether each loss term, gradient and float input is finite.

        `gradients`: each sharded table's (a list of its shards'
        gradients), then the trainable variables' (sparse, then dense).
        The loop stops at the first step where one is not finite (before
        any checkpoint of its weights), and names it.
        """
        self._float_inputs = tuple(
            sorted(
                key
                for key, value in features.items()
                if value.dtype.is_floating
            )
        )
        tensors = [cross_entropy, regularization, *gradients]
        tensors += [features[key] for key in self._float_inputs]
        flags = [_finite(t) for t in tensors]
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
        if self.sharded_sparse is not None:
            names += [f"gradient of {p}" for p in self.sharded_sparse.paths]
        names += [f"gradient of {v.path}" for v in sparse + dense]
        return names + [f'input feature "{key}"' for key in self._float_inputs]

    def clip_gradients(self, gradients: list) -> list:
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
        return self.task_step(data, training=False)[2]["logs"]

    def get_config(self) -> dict:
        return {
            **self.task.options(),
            "gradient_clipping": self.gradient_clipping,
            "name": self.name,
        }


def task_inputs(side_inputs: dict[str, tf.Tensor]) -> dict:
    """The Retrieval task's explicit tensors from a batch's side inputs
    (None where the batch has none)."""
    return {
        "item_ids": side_inputs.get(ITEM_ID),
        "negative_item_ids": side_inputs.get(NEG_ITEM_ID),
        "negative_log_q": side_inputs.get(NEG_LOG_Q),
        "hard_neg_indices": side_inputs.get(HARD_NEG_INDICES),
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


def _finite(value) -> tf.Tensor:
    """Whether every number of a tensor, a gradient (dense or row-sparse)
    or a list of gradients (a sharded table's shards') is finite; None is
    the gradient of a variable the batch did not reach."""
    if value is None:
        return tf.constant(True)
    if isinstance(value, list):
        return tf.reduce_all(tf.stack([_finite(v) for v in value] or [True]))
    if isinstance(value, tf.IndexedSlices):
        value = value.values
    return tf.reduce_all(tf.math.is_finite(value))
