"""Row-sparse optimizers: the dense rule on touched rows, nothing elsewhere."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.layers import EmbeddingTables
from easymatch.specs import TableSpec
from easymatch.training.learning_rate import ExponentialDecayLR
from easymatch.training.sparse_optimizers import (
    RowSparseAdagrad,
    RowSparseAdam,
    RowSparseSGD,
)

REPO = Path(__file__).resolve().parents[1]
ROWS, DIM, LR = 12, 3, 0.05
# Repeats inside a batch, rows that come and go, rows 6, 7, 9-11 never used.
ID_BATCHES = [
    [1, 1, 2, 5, 1],
    [2, 3, 3, 0],
    [5, 5, 5, 5],
    [0, 8, 1, 2, 8, 4],
]
KINDS = {
    "sgd": (RowSparseSGD, {}),
    "adagrad": (
        RowSparseAdagrad,
        {"initial_accumulator_value": 0.1, "epsilon": 1e-10},
    ),
    "adam": (RowSparseAdam, {"beta_1": 0.8, "beta_2": 0.95, "epsilon": 1e-8}),
}
STRATEGIES = {
    "default": tf.distribute.get_strategy,
    "mirrored": lambda: tf.distribute.MirroredStrategy(["/cpu:0"]),
}


def reference_step(
    kind: str,
    weights: np.ndarray,
    slots: list[np.ndarray],
    gradient: np.ndarray,
    rows: np.ndarray,
    step: int,
    lr: float = LR,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """The dense rule of `kind`, applied to `rows` only (float64)."""
    w, slots = weights.copy(), [s.copy() for s in slots]
    g = gradient[rows]
    hp = KINDS[kind][1]
    if kind == "sgd":
        w[rows] -= lr * g
    elif kind == "adagrad":
        acc = slots[0]
        acc[rows] += g * g
        w[rows] -= lr * g / (np.sqrt(acc[rows]) + hp["epsilon"])
    else:
        m, v = slots
        b1, b2 = hp["beta_1"], hp["beta_2"]
        m[rows] = b1 * m[rows] + (1 - b1) * g
        v[rows] = b2 * v[rows] + (1 - b2) * g * g
        m_hat = m[rows] / (1 - b1**step)
        v_hat = v[rows] / (1 - b2**step)
        w[rows] -= lr * m_hat / (np.sqrt(v_hat) + hp["epsilon"])
    return w, slots


def initial_slots(kind: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    if kind == "sgd":
        return []
    if kind == "adagrad":
        return [np.full(shape, 0.1)]
    return [np.zeros(shape), np.zeros(shape)]


def coefficients(ids: list[int], seed: int) -> np.ndarray:
    """d loss / d looked-up row, one random row per lookup."""
    return np.random.default_rng(seed).normal(size=(len(ids), DIM))


def dense_gradient(ids: list[int], coeffs: np.ndarray) -> np.ndarray:
    gradient = np.zeros((ROWS, DIM))
    np.add.at(gradient, ids, coeffs)
    return gradient


def slot_values(
    optimizer: keras.optimizers.Optimizer, table: keras.Variable
) -> list[np.ndarray]:
    return [v.numpy() for v in optimizer.variables if v.shape == table.shape]


def make_step(
    strategy: tf.distribute.Strategy,
    optimizer: keras.optimizers.Optimizer,
    table: keras.Variable,
    densify: bool = False,
) -> tf.types.experimental.PolymorphicFunction:
    @tf.function
    def step(ids: tf.Tensor, coeffs: tf.Tensor) -> None:
        def replica_fn(ids: tf.Tensor, coeffs: tf.Tensor) -> None:
            with tf.GradientTape() as tape:
                # A resource gather: converting the Keras variable would
                # read the whole table, which dominates a 1M-row step.
                rows = tf.gather(table.value, ids)
                loss = tf.reduce_sum(rows * coeffs)
            gradient = tape.gradient(loss, table)
            assert isinstance(gradient, tf.IndexedSlices)
            if densify:
                gradient = tf.convert_to_tensor(gradient)
            optimizer.apply([gradient], [table])

        strategy.run(replica_fn, args=(ids, coeffs))

    return step


def make_table(
    strategy: tf.distribute.Strategy, kind: str, **kwargs: Any
) -> tuple[keras.Variable, keras.optimizers.Optimizer]:
    initial = np.random.default_rng(0).normal(size=(ROWS, DIM))
    with strategy.scope():
        table = keras.Variable(initial.astype("float32"))
        cls, hp = KINDS[kind]
        optimizer = cls(**{"learning_rate": LR, **hp, **kwargs})
        optimizer.build([table])
    return table, optimizer


@pytest.mark.parametrize("strategy_name", STRATEGIES)
@pytest.mark.parametrize("kind", KINDS)
def test_touched_rows_follow_the_dense_rule(kind: str, strategy_name: str):
    strategy = STRATEGIES[strategy_name]()
    table, optimizer = make_table(strategy, kind)
    step = make_step(strategy, optimizer, table)
    weights = table.numpy().astype(np.float64)
    slots = initial_slots(kind, weights.shape)
    for t, ids in enumerate(ID_BATCHES, start=1):
        before = [table.numpy(), *slot_values(optimizer, table)]
        coeffs = coefficients(ids, seed=t)
        step(tf.constant(ids), tf.constant(coeffs, tf.float32))
        rows = np.unique(ids)
        weights, slots = reference_step(
            kind, weights, slots, dense_gradient(ids, coeffs), rows, t
        )
        after = [table.numpy(), *slot_values(optimizer, table)]
        for got, expected in zip(after, [weights, *slots], strict=True):
            np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
        untouched = np.setdiff1d(np.arange(ROWS), rows)
        for old, new in zip(before, after, strict=True):
            assert np.array_equal(old[untouched], new[untouched])
    assert optimizer.iterations.numpy() == len(ID_BATCHES)


@pytest.mark.parametrize("kind", KINDS)
def test_dense_gradient_updates_every_row(kind: str):
    strategy = tf.distribute.get_strategy()
    table, optimizer = make_table(strategy, kind)
    step = make_step(strategy, optimizer, table, densify=True)
    weights = table.numpy().astype(np.float64)
    slots = initial_slots(kind, weights.shape)
    for t, ids in enumerate(ID_BATCHES[:2], start=1):
        coeffs = coefficients(ids, seed=t)
        step(tf.constant(ids), tf.constant(coeffs, tf.float32))
        weights, slots = reference_step(
            kind,
            weights,
            slots,
            dense_gradient(ids, coeffs),
            np.arange(ROWS),
            t,
        )
    # Dense Adam moves rows 0 and 5 (touched at step 1 only) at step 2.
    after = [table.numpy(), *slot_values(optimizer, table)]
    for got, expected in zip(after, [weights, *slots], strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_two_replicas_sum_the_same_row_across_replicas():
    # Logical CPU devices must be set before TensorFlow starts, so this
    # runs in a fresh interpreter.
    script = """
        import keras
        import numpy as np
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        from easymatch.training.sparse_optimizers import RowSparseAdam
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            table = keras.Variable(np.ones((6, 2), "float32"))
            optimizer = RowSparseAdam(0.1)
            # Slots created lazily inside the replicated step fail (stock
            # Keras optimizers too); MatchModel.build_optimizers does this.
            optimizer.build([table])
        ids = ([1, 1, 2], [2, 4])
        @tf.function
        def step(ids):
            def replica_fn(ids):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(tf.gather(table, ids))
                gradient = tape.gradient(loss, [table])
                assert isinstance(gradient[0], tf.IndexedSlices)
                optimizer.apply(gradient, [table])
            strategy.run(replica_fn, args=(ids,))
        step(strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(ids[context.replica_id_in_sync_group])
        ))
        for replica in table.value.values:
            np.testing.assert_allclose(
                replica.numpy()[:, 0], [1, 0.9, 0.9, 1, 0.9, 1], atol=1e-5
            )
        m = optimizer.variables[-2].value.values[1].numpy()[:, 0]
        np.testing.assert_allclose(m, [0, 0.2, 0.2, 0, 0.1, 0])
    """
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def one_step_then_time(rows: int) -> tuple[float, list[str]]:
    """Checks one step of a 16-wide table, then times five more.

    Returns (seconds per step, op types with a table-sized output).
    """
    rng = np.random.default_rng(1)
    initial = rng.random((rows, 16), dtype=np.float32)
    table = keras.Variable(initial)
    ids = rng.integers(0, rows, 4096)
    step = make_step(tf.distribute.get_strategy(), RowSparseAdam(0.01), table)
    args = (tf.constant(ids), tf.ones((4096, 16)))
    step(*args)
    after = table.numpy()
    untouched = np.setdiff1d(rng.integers(0, rows, 20_000), ids)
    assert np.array_equal(initial[untouched], after[untouched])
    assert not np.array_equal(initial[ids], after[ids])
    start = time.perf_counter()
    for _ in range(5):
        step(*args)
    seconds = (time.perf_counter() - start) / 5
    graph = step.get_concrete_function(*args).graph
    table_sized = [
        op.type
        for op in graph.get_operations()
        for output in op.outputs
        if output.shape.rank and output.shape[0] == rows
    ]
    return seconds, table_sized


def test_large_table_step_touches_only_looked_up_rows():
    small, _ = one_step_then_time(10_000)
    large, table_sized = one_step_then_time(1_000_000)
    print(
        f"RowSparseAdam step, 4096 ids x 16: 10k rows {small * 1e3:.2f} ms, "
        f"1M rows {large * 1e3:.2f} ms"
    )
    # Timings are noisy; the graph shows that no op scales with the table.
    assert table_sized == []


def test_config_round_trip():
    schedule = ExponentialDecayLR(0.1, decay_size=10, decay_factor=0.5)
    for optimizer in [
        RowSparseSGD(0.3),
        RowSparseAdagrad(schedule, initial_accumulator_value=0.2),
        RowSparseAdam(0.01, beta_1=0.5, beta_2=0.7, epsilon=1e-6),
    ]:
        config = optimizer.get_config()
        clone = type(optimizer).from_config(dict(config))
        assert clone.get_config() == config
        restored = keras.optimizers.deserialize(
            keras.optimizers.serialize(optimizer)
        )
        assert type(restored) is type(optimizer)
        assert restored.get_config() == config


def test_learning_rate_schedule_is_read_per_step():
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.5, decay_steps=1, decay_rate=0.1
    )
    strategy = tf.distribute.get_strategy()
    table, optimizer = make_table(strategy, "sgd", learning_rate=schedule)
    step = make_step(strategy, optimizer, table)
    weights = table.numpy().astype(np.float64)
    for t, ids in enumerate(ID_BATCHES[:3]):
        coeffs = coefficients(ids, seed=t)
        step(tf.constant(ids), tf.constant(coeffs, tf.float32))
        weights -= 0.5 * 0.1**t * dense_gradient(ids, coeffs)
    np.testing.assert_allclose(table.numpy(), weights, rtol=1e-6, atol=1e-6)


def test_options_that_touch_every_row_are_refused():
    with pytest.raises(ValueError, match="weight_decay"):
        RowSparseAdam(0.1, weight_decay=0.01)


class TinyModel(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.tables = EmbeddingTables([TableSpec("item", 50, 4)])
        self.head = keras.layers.Dense(1)

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        embeddings = self.tables({"item": ids})["item"]
        return self.head(tf.reduce_sum(embeddings, axis=1))


def test_trains_a_model_with_embedding_tables():
    model = TinyModel()
    rng = np.random.default_rng(4)
    ids = rng.integers(1, 30, (16, 3))
    ids[::3, 2] = -1
    targets = tf.constant(rng.normal(size=(16, 1)), tf.float32)
    ids = tf.constant(ids)
    model(ids)
    sparse_optimizer = RowSparseAdagrad(0.5)
    dense_optimizer = keras.optimizers.Adam(0.05)
    table = model.tables.embedding_variables[0]
    dense = model.head.trainable_variables

    @tf.function
    def train_step() -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(ids) - targets))
        table_gradient, *dense_gradients = tape.gradient(loss, [table, *dense])
        assert isinstance(table_gradient, tf.IndexedSlices)
        sparse_optimizer.apply([table_gradient], [table])
        dense_optimizer.apply(dense_gradients, dense)
        return loss

    before = table.numpy()
    losses = [float(train_step()) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    # Row 0 receives the padding lookups' zero gradients: no change.
    unused = np.setdiff1d(np.arange(50), ids.numpy())
    assert np.array_equal(before[unused], table.numpy()[unused])


def test_checkpoint_restores_slots(tmp_path: Path):
    strategy = tf.distribute.get_strategy()
    table, optimizer = make_table(strategy, "adam")
    step = make_step(strategy, optimizer, table)
    for t, ids in enumerate(ID_BATCHES[:2]):
        step(tf.constant(ids), tf.constant(coefficients(ids, t), tf.float32))
    path = tf.train.Checkpoint(table=table, optimizer=optimizer).save(
        str(tmp_path / "ckpt")
    )

    clone_table, clone = make_table(strategy, "adam")
    tf.train.Checkpoint(table=clone_table, optimizer=clone).restore(
        path
    ).assert_consumed()
    assert int(clone.iterations) == 2
    for got, expected in zip(
        slot_values(clone, clone_table),
        slot_values(optimizer, table),
        strict=True,
    ):
        assert np.array_equal(got, expected)
    ids = ID_BATCHES[2]
    coeffs = tf.constant(coefficients(ids, 9), tf.float32)
    step(tf.constant(ids), coeffs)
    make_step(strategy, clone, clone_table)(tf.constant(ids), coeffs)
    assert np.array_equal(table.numpy(), clone_table.numpy())
