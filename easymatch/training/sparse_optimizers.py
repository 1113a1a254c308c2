"""Row-sparse embedding optimizers and train_config.sparse_optimizer.

TorchEasyRec trains embedding tables with fbgemm's fused optimizers
(EXACT_SGD, EXACT_ADAGRAD, ADAM), which update only the rows a batch looked
up. Stock Keras optimizers densify a `tf.IndexedSlices` gradient, so each
step would read and write every row of every table and, for Adam, move
untouched rows through their momentum. These optimizers sum duplicate ids,
gather the touched rows of the slot variables, apply the dense rule to those
rows and scatter the results back; other rows stay bit-identical. A dense
gradient gets the same rule over the whole variable.

TensorFlow backend only: updates go through `TFOptimizer.assign` and
`assign_sub`, which scatter `tf.IndexedSlices` into the `tf.Variable`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from easymatch.errors import ConfigError
from easymatch.training.optimizers import learning_rate, optimizer_params
from easymatch.training.varying_gather import varying_gather
from easymatch.variable_rows import gather_rows

# Base options that act on whole tables every step, which is what these
# optimizers exist to avoid.
_DENSE_ONLY_OPTIONS = ("weight_decay", "use_ema", "gradient_accumulation_steps")


def _sum_duplicates(gradient: tf.IndexedSlices) -> tf.IndexedSlices:
    """One row per id: a read-modify-write of a repeated id would keep only
    one of its contributions, and Adagrad/Adam are not additive. Ids repeat
    within a batch and across replicas, whose slices MirroredStrategy's
    all-reduce concatenates."""
    ids, positions = tf.unique(gradient.indices)
    rows = tf.math.unsorted_segment_sum(
        gradient.values, positions, tf.shape(ids)[0]
    )
    return tf.IndexedSlices(rows, ids, gradient.dense_shape)


class _RowSparseOptimizer(keras.optimizers.Optimizer):
    """Applies `_rule` to the touched rows of a variable and its slots."""

    def __init__(self, learning_rate: Any, **kwargs: Any):
        for option in _DENSE_ONLY_OPTIONS:
            if kwargs.get(option):
                raise ValueError(
                    f"{type(self).__name__} does not support {option}: it "
                    "would update every row of the tables each step."
                )
        super().__init__(learning_rate=learning_rate, **kwargs)

    def _slot_specs(self) -> list[tuple[str, float]]:
        """(name, initial value) of each per-element slot variable."""
        return []

    def _rule(
        self, gradient: tf.Tensor, slots: list[tf.Tensor], lr: tf.Tensor
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """(amount to subtract from the rows, new slot rows)."""
        raise NotImplementedError

    @property
    def slot_names(self) -> list[str]:
        """The names of the slots each variable has, in `_rule`'s order."""
        return [name for name, _ in self._slot_specs()]

    def slot_variables(self, variable: keras.Variable) -> list[keras.Variable]:
        """`variable`'s slots (after `build`), in `slot_names` order."""
        index = self._get_variable_index(variable)
        return [slot_list[index] for slot_list in self._slots]

    def counters(self) -> dict[str, keras.Variable]:
        """The optimizer's variables other than slots (its step count and
        a constant learning rate) under their checkpoint names."""
        counters = {"_iterations": self._iterations}
        if isinstance(self._learning_rate, keras.Variable):
            counters["_learning_rate"] = self._learning_rate
        return counters

    def build(self, var_list: list[keras.Variable]) -> None:
        if self.built:
            return
        super().build(var_list)
        # Under MirroredStrategy and MWMS, row-sparse gradients are summed
        # over replicas by gathers that work several steps per call.
        self._gather = varying_gather()
        self._slots = [
            self.add_optimizer_variables(
                var_list, name, initializer=keras.initializers.Constant(value)
            )
            for name, value in self._slot_specs()
        ]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        context = tf.distribute.get_replica_context()
        gather = getattr(self, "_gather", None)
        if gather is None or context is None:
            return super()._all_reduce_sum_gradients(grads_and_vars)
        pairs = list(grads_and_vars)
        sparse = [
            i
            for i, (g, _) in enumerate(pairs)
            if isinstance(g, tf.IndexedSlices)
        ]
        others = [p for i, p in enumerate(pairs) if i not in sparse]
        reduced = dict(
            zip(
                sparse,
                gather.sum_indexed_slices(
                    [pairs[i][0] for i in sparse], self.iterations.value
                ),
                strict=True,
            )
        )
        reduced_others = iter(super()._all_reduce_sum_gradients(others))
        return [
            (reduced[i], v) if i in reduced else next(reduced_others)
            for i, (_, v) in enumerate(pairs)
        ]

    def update_step(
        self, gradient: Any, variable: tf.Variable, learning_rate: Any
    ) -> None:
        slots = self.slot_variables(variable)
        lr = tf.cast(learning_rate, variable.dtype)
        gradient = tf.cast(gradient, variable.dtype)
        if isinstance(gradient, tf.IndexedSlices):
            gradient = _sum_duplicates(gradient)
            ids = gradient.indices
            old = [gather_rows(slot, ids) for slot in slots]
            delta, new = self._rule(gradient.values, old, lr)
            for slot, rows in zip(slots, new, strict=True):
                self.assign(slot, tf.IndexedSlices(rows, ids))
            self.assign_sub(variable, tf.IndexedSlices(delta, ids))
            return
        old = [tf.convert_to_tensor(slot.value) for slot in slots]
        delta, new = self._rule(gradient, old, lr)
        for slot, value in zip(slots, new, strict=True):
            self.assign(slot, value)
        self.assign_sub(variable, delta)


@keras.saving.register_keras_serializable(package="easymatch")
class RowSparseSGD(_RowSparseOptimizer):
    """Plain SGD, `w -= lr * g`, on the touched rows only (EXACT_SGD)."""

    def __init__(
        self,
        learning_rate: Any = 0.01,
        name: str = "row_sparse_sgd",
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def _rule(
        self, gradient: tf.Tensor, slots: list[tf.Tensor], lr: tf.Tensor
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        return lr * gradient, []


@keras.saving.register_keras_serializable(package="easymatch")
class RowSparseAdagrad(_RowSparseOptimizer):
    """Element-wise Adagrad in PyTorch's form (EXACT_ADAGRAD).

    `acc += g²; w -= lr * g / (sqrt(acc) + epsilon)`, epsilon outside the
    square root unlike `keras.optimizers.Adagrad`.
    """

    def __init__(
        self,
        learning_rate: Any = 0.01,
        initial_accumulator_value: float = 0.0,
        epsilon: float = 1e-10,
        name: str = "row_sparse_adagrad",
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon

    def _slot_specs(self) -> list[tuple[str, float]]:
        return [("accumulator", self.initial_accumulator_value)]

    def _rule(
        self, gradient: tf.Tensor, slots: list[tf.Tensor], lr: tf.Tensor
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        accumulator = slots[0] + tf.square(gradient)
        delta = lr * gradient / (tf.sqrt(accumulator) + self.epsilon)
        return delta, [accumulator]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config["initial_accumulator_value"] = self.initial_accumulator_value
        config["epsilon"] = self.epsilon
        return config


@keras.saving.register_keras_serializable(package="easymatch")
class RowSparseAdam(_RowSparseOptimizer):
    """Lazy Adam in PyTorch's form, as fbgemm's sparse ADAM.

    For each touched row: `m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g²;
    w -= lr * m̂ / (sqrt(v̂) + epsilon)` with `m̂ = m / (1 - b1^t)`,
    `v̂ = v / (1 - b2^t)` and t the optimizer's step count. As in fbgemm,
    the moments of rows a step does not touch do not decay, and those rows
    do not move. A padding id that the lookup maps to a real row with a zero
    gradient counts as a touch.
    """

    def __init__(
        self,
        learning_rate: Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        name: str = "row_sparse_adam",
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _slot_specs(self) -> list[tuple[str, float]]:
        return [("momentum", 0.0), ("velocity", 0.0)]

    def _rule(
        self, gradient: tf.Tensor, slots: list[tf.Tensor], lr: tf.Tensor
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        m, v = slots
        m = self.beta_1 * m + (1.0 - self.beta_1) * gradient
        v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(gradient)
        step = tf.cast(self.iterations + 1, gradient.dtype)
        m_hat = m / (1.0 - tf.pow(tf.cast(self.beta_1, gradient.dtype), step))
        v_hat = v / (1.0 - tf.pow(tf.cast(self.beta_2, gradient.dtype), step))
        return lr * m_hat / (tf.sqrt(v_hat) + self.epsilon), [m, v]

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon
        )
        return config


def build_sparse_optimizer(
    optimizer_config, field: str
) -> keras.optimizers.Optimizer:
    """A SparseOptimizer message → a row-sparse Keras optimizer."""
    kind, params, path = optimizer_params(optimizer_config, field)
    if getattr(params, "weight_decay", 0.0):
        raise ConfigError(f"{path}.weight_decay: not supported yet")
    rate = learning_rate(optimizer_config, params.lr, field)
    if kind == "sgd_optimizer":
        return RowSparseSGD(learning_rate=rate)
    if kind == "adagrad_optimizer":
        return RowSparseAdagrad(
            learning_rate=rate,
            initial_accumulator_value=params.initial_accumulator_value,
        )
    if kind == "adam_optimizer":
        return RowSparseAdam(
            learning_rate=rate, beta_1=params.beta1, beta_2=params.beta2
        )
    raise ConfigError(f"{path}: not supported yet")
