"""Training and input-pipeline throughput on the dssm_taobao shapes."""

from __future__ import annotations

import json
import time

import keras
import numpy as np
import tensorflow as tf

from easymatch.config import load_pipeline_config
from easymatch.data.dataset import batch_transform, make_dataset, make_reader
from easymatch.features.builder import build_feature_set
from easymatch.models.dssm import DSSM
from easymatch.training.loop import create_model
from easymatch.training.sparse_optimizers import RowSparseAdagrad


def taobao_config(config_path: str, data_dir: str, batch_size: int):
    """The sample config on generated data, in-batch negatives only.

    TorchEasyRec's reference figure is for in-batch negatives, so any
    configured sampler is dropped here.
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
    kind = config.model_config.WhichOneof("model")
    getattr(config.model_config, kind).in_batch_negative = True
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


def pipeline_throughput(config, batches: int) -> dict:
    """Reader + feature transforms alone, as training would consume them."""
    feature_set = build_feature_set(config)
    reader = make_reader(
        config, feature_set, config.train_input_path, training=True
    )
    dataset = make_dataset(
        reader, batch_transform(config, feature_set), num_epochs=None
    )
    iterator = iter(dataset)
    seconds = _timed_steps(lambda: next(iterator), 3, batches)
    batch_size = config.data_config.batch_size
    return {
        "batches_per_sec": 1.0 / seconds,
        "examples_per_sec": batch_size / seconds,
    }


def training_throughput(config, steps: int, warmup: int = 5) -> dict:
    """Steady-state training examples/s (start-up and tracing excluded)."""
    strategy = tf.distribute.get_strategy()
    feature_set = build_feature_set(config)
    model = create_model(config, feature_set, strategy)
    reader = make_reader(
        config, feature_set, config.train_input_path, training=True
    )
    dataset = make_dataset(
        reader, batch_transform(config, feature_set), num_epochs=None
    )
    # Cached batches take the input pipeline out of the measurement.
    cached = dataset.take(8).cache().repeat()
    iterator = iter(cached)

    @tf.function
    def step():
        return strategy.run(model.train_step, args=(next(iterator),))

    seconds = _timed_steps(step, warmup, steps)
    batch_size = config.data_config.batch_size
    return {
        "steps_per_sec": 1.0 / seconds,
        "examples_per_sec": batch_size / seconds,
    }


def table_scaling(rows: list[int], batch_size: int, steps: int) -> dict:
    """Step time (ms) of a one-table tower pair as the user table grows.

    With row-sparse optimizers a step touches only looked-up rows, so the
    time should not grow with the table.
    """
    return {
        str(num_rows): _table_step_seconds(num_rows, batch_size, steps) * 1e3
        for num_rows in rows
    }


def _one_table_dssm(num_rows: int) -> DSSM:
    def sparse(name: str, size: int) -> dict:
        return {
            "name": name,
            "kind": "sparse",
            "embedding_name": f"{name}_emb",
            "num_embeddings": size,
            "embedding_dim": 16,
        }

    model = DSSM(
        features=[sparse("user_id", num_rows), sparse("item_id", 10_000)],
        groups=[
            {"name": "user", "feature_names": ["user_id"]},
            {"name": "item", "feature_names": ["item_id"]},
        ],
        user_tower={"input": "user", "mlp": {"hidden_units": [64]}},
        item_tower={"input": "item", "mlp": {"hidden_units": [64]}},
        output_dim=32,
        in_batch_negative=True,
    )
    model.compile(
        dense_optimizer=keras.optimizers.Adam(1e-3),
        sparse_optimizer=RowSparseAdagrad(0.01),
    )
    model.build_optimizers()
    return model


def _table_step_seconds(num_rows: int, batch_size: int, steps: int) -> float:
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
    return _timed_steps(
        lambda: train_step(batches[next(counter) % 4]), 3, steps
    )
