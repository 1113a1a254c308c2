"""Training and input-pipeline throughput on the dssm_taobao shapes."""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import tensorflow as tf

from easymatch.config import load_pipeline_config
from easymatch.data.dataset import make_dataset
from easymatch.models.dssm import DSSM
from easymatch.run_context import RunContext
from easymatch.specs import (
    FeatureSpec,
    GroupSpec,
    MlpSpec,
    TableSpec,
    TowerSpec,
)
from easymatch.specs.derive import model_options
from easymatch.training.loop import make_train_steps
from easymatch.training.sparse_optimizers import RowSparseAdagrad


def taobao_config(
    config_path: str,
    data_dir: str,
    batch_size: int,
    *,
    steps_per_execution: int | None = None,
    mixed_precision: str = "",
):
    """The sample config on generated data, in-batch negatives only.

    TorchEasyRec's reference figure is for in-batch negatives, so any
    configured sampler is dropped here. `steps_per_execution` (default: the
    config's) and `mixed_precision` override train_config.
    """
    config = load_pipeline_config(
        config_path,
        json.dumps(
            {
                "train_input_path": f"{data_dir}/train.parquet",
                "eval_input_path": f"{data_dir}/eval.parquet",
                "data_config.batch_size": batch_size,
            }
        ),
    )
    config.data_config.ClearField("sampler")
    if steps_per_execution is not None:
        config.train_config.steps_per_execution = steps_per_execution
    config.train_config.mixed_precision = mixed_precision
    model_options(config).in_batch_negative = True
    return config


def _timed_steps(step_fn, warmup: int, steps: int) -> float:
    """Seconds per step after `warmup` steps; syncs only at the ends."""
    for _ in range(warmup):
        step_fn()
    start = time.perf_counter()
    result = None
    for _ in range(steps):
        result = step_fn()
    # Reading a value waits for the last step's work.
    tf.nest.map_structure(lambda t: np.asarray(t), result)
    return (time.perf_counter() - start) / steps


def pipeline_throughput(config, batches: int, warmup: int) -> dict:
    """Reader + feature transforms alone, as training would consume them.

    `warmup` batches first: the reader threads and tf.data's autotuning
    take a few dozen batches to reach their steady state.
    """
    run = RunContext(config)
    reader = run.reader(config.train_input_path, training=True)
    dataset = make_dataset(reader, run.transform, num_epochs=None)
    iterator = iter(dataset)
    seconds = _timed_steps(lambda: next(iterator), warmup, batches)
    batch_size = config.data_config.batch_size
    return {
        "batches_per_sec": 1.0 / seconds,
        "examples_per_sec": batch_size / seconds,
    }


def _cached_training(config):
    """(train_steps, iterator) of a fresh model on 8 cached batches, so
    the input pipeline stays out of the measurement."""
    strategy = tf.distribute.get_strategy()
    run = RunContext(config, strategy=strategy)
    model = run.create_model()
    reader = run.reader(config.train_input_path, training=True)
    dataset = make_dataset(reader, run.transform, num_epochs=None)
    iterator = iter(dataset.take(8).cache().repeat())
    return make_train_steps(model, strategy), iterator


def _seconds_per_step(train_steps, iterator, per_call: int, steps: int):
    count = tf.constant(per_call)
    calls = max(steps // per_call, 1)
    # Two passes over the 8 cached batches first: oneDNN prepares its
    # kernels per padded shape, and each batch has its own.
    warmup = max(16 // per_call, 1)
    seconds = _timed_steps(lambda: train_steps(iterator, count), warmup, calls)
    return seconds / per_call


def training_throughput(config, steps: int) -> dict:
    """Steady-state training examples/s (start-up and tracing excluded),
    run as the training loop runs it: `steps_per_execution` steps a call.
    """
    train_steps, iterator = _cached_training(config)
    per_call = max(config.train_config.steps_per_execution, 1)
    seconds = _seconds_per_step(train_steps, iterator, per_call, steps)
    batch_size = config.data_config.batch_size
    return {
        "steps_per_sec": 1.0 / seconds,
        "examples_per_sec": batch_size / seconds,
    }


def step_ms_by_steps_per_execution(
    config, per_calls: list[int], steps: int, rounds: int
) -> dict:
    """Step time (ms) of one model run `per_call` steps a call, for each
    value; the values take turns over `rounds` rounds (medians)."""
    train_steps, iterator = _cached_training(config)
    times: dict[int, list[float]] = {n: [] for n in per_calls}
    for _ in range(rounds):
        for per_call in per_calls:
            times[per_call].append(
                _seconds_per_step(train_steps, iterator, per_call, steps)
            )
    return {str(n): float(np.median(t)) * 1e3 for n, t in times.items()}


def table_scaling(
    rows: list[int], batch_size: int, steps: int, rounds: int = 5
) -> dict:
    """Step time (ms) of a one-table tower pair as the user table grows.

    With row-sparse optimizers a step touches only looked-up rows, so the
    time should not grow with the table. The sizes take turns over
    `rounds` rounds of `steps` steps and each reports its median, so a
    slow spell of the machine does not land on one size.
    """
    step_fns = {
        num_rows: _table_step(num_rows, batch_size) for num_rows in rows
    }
    times: dict[int, list[float]] = {num_rows: [] for num_rows in rows}
    for _ in range(rounds):
        for num_rows, step_fn in step_fns.items():
            times[num_rows].append(_timed_steps(step_fn, 3, steps))
    return {
        str(num_rows): float(np.median(seconds)) * 1e3
        for num_rows, seconds in times.items()
    }


def _one_table_dssm(num_rows: int) -> DSSM:
    def sparse(name: str, size: int) -> FeatureSpec:
        return FeatureSpec.sparse(name, TableSpec(f"{name}_emb", size, 16))

    model = DSSM(
        features=[sparse("user_id", num_rows), sparse("item_id", 10_000)],
        groups=[
            GroupSpec("user", ("user_id",)),
            GroupSpec("item", ("item_id",)),
        ],
        user_tower=TowerSpec("user", MlpSpec((64,))),
        item_tower=TowerSpec("item", MlpSpec((64,))),
        output_dim=32,
        in_batch_negative=True,
    )
    model.compile(
        dense_optimizer=keras.optimizers.Adam(1e-3),
        sparse_optimizer=RowSparseAdagrad(0.01),
    )
    model.build_optimizers()
    return model


def _table_step(num_rows: int, batch_size: int):
    """A function that runs one training step on a rotating batch."""
    model = _one_table_dssm(num_rows)
    rng = np.random.default_rng(0)
    ones = tf.ones([batch_size])
    shape = (batch_size, 1)
    batches = [
        (
            {
                "user_id": tf.constant(rng.integers(0, num_rows, shape)),
                "item_id": tf.constant(rng.integers(0, 10_000, shape)),
            },
            ones,
            ones,
        )
        for _ in range(4)
    ]
    train_step = tf.function(model.train_step)
    counter = iter(range(10**9))
    return lambda: train_step(batches[next(counter) % 4])
