"""Input pipeline with a negative sampler vs. the training step it feeds.

python tools/bench_pipeline.py [--data_dir data/bench_sampler]
    [--num_rows 200000] [--num_items 100000] [--batch_size 8192]
    [--num_sample 1024] [--batches 30] [--steps 10] [--output FILE]

Prints one JSON object: batches/s and examples/s of reader + feature
transforms + NegativeSampler as training consumes them, steps/s of the
training step (samples/dssm_taobao.config) on cached batches of the same
pipeline, and their ratio, which should be >= 5 so that training never
waits for input. The data is generated on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from gen_taobao_data import generate  # noqa: E402

from easymatch.config import load_pipeline_config  # noqa: E402
from easymatch.data.dataset import (  # noqa: E402
    make_dataset,
)
from easymatch.run_context import RunContext  # noqa: E402

TAOBAO_CONFIG = os.path.join(ROOT, "samples", "dssm_taobao.config")


def ensure_data(
    data_dir: str, num_rows: int, num_items: int, num_users: int
) -> None:
    """Generated Taobao-style data and sampler tables, written once."""
    if not os.path.exists(os.path.join(data_dir, "item_table.txt")):
        generate(
            data_dir,
            num_users=num_users,
            num_items=num_items,
            num_rows=num_rows,
            seed=0,
        )


def sampler_config(data_dir: str, batch_size: int, num_sample: int):
    """samples/dssm_taobao.config (NegativeSampler) on the generated data."""
    edits = {
        "train_input_path": os.path.join(data_dir, "train.parquet"),
        "eval_input_path": os.path.join(data_dir, "eval.parquet"),
        "data_config.batch_size": batch_size,
        "data_config.negative_sampler.input_path": os.path.join(
            data_dir, "item_table.txt"
        ),
        "data_config.negative_sampler.num_sample": num_sample,
    }
    return load_pipeline_config(TAOBAO_CONFIG, json.dumps(edits))


def training_batches(run: RunContext) -> tf.data.Dataset:
    """The endless training input, built as the training loop builds it."""
    reader = run.reader(run.config.train_input_path, training=True)
    return make_dataset(
        reader,
        run.transform,
        num_epochs=None,
        negatives=run.negatives(training=True),
    )


def seconds_per_call(
    fn: Callable[[object], object], arg: object, warmup: int, calls: int
) -> float:
    """Mean seconds of ``fn(arg)`` after ``warmup`` calls, results ready."""
    for _ in range(warmup):
        fn(arg)
    start = time.perf_counter()
    result = None
    for _ in range(calls):
        result = fn(arg)
    # Reading the values waits for work dispatched asynchronously.
    tf.nest.map_structure(np.asarray, result)
    return (time.perf_counter() - start) / calls


def pipeline_throughput(run: RunContext, batches: int) -> dict[str, float]:
    """Batches/s and examples/s the input pipeline delivers on its own."""
    iterator = iter(training_batches(run))
    seconds = seconds_per_call(next, iterator, 3, batches)
    # A live iterator over the reader's generator can hang interpreter
    # exit; drop it here.
    del iterator
    return {
        "batches_per_sec": 1.0 / seconds,
        "examples_per_sec": run.specs.data.batch_size / seconds,
    }


def training_throughput(run: RunContext, steps: int) -> dict[str, float]:
    """Steps/s of the training step on cached batches of the pipeline."""
    strategy = run.strategy
    model = run.create_model()
    cached = training_batches(run).take(4)
    iterator = iter(cached.cache().repeat())

    @tf.function
    def step(iterator):
        return strategy.run(model.train_step, args=(next(iterator),))

    seconds = seconds_per_call(step, iterator, 3, steps)
    del iterator
    return {
        "steps_per_sec": 1.0 / seconds,
        "examples_per_sec": run.specs.data.batch_size / seconds,
    }


def run(args: argparse.Namespace) -> dict:
    ensure_data(args.data_dir, args.num_rows, args.num_items, args.num_users)
    config = sampler_config(args.data_dir, args.batch_size, args.num_sample)
    run = RunContext(config)
    negatives = run.negatives(training=True)
    # Other processes share the cores: the load says how much.
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    pipeline = pipeline_throughput(run, args.batches)
    train = training_throughput(run, args.steps)
    return {
        "batch_size": args.batch_size,
        "num_sample": args.num_sample,
        "num_rows": args.num_rows,
        "num_items": len(negatives.sampler.items),
        "machine_cores": os.cpu_count(),
        "load_average_1m": [load_before, os.getloadavg()[0]],
        "pipeline": pipeline,
        "train": train,
        "pipeline_to_train_ratio": (
            pipeline["batches_per_sec"] / train["steps_per_sec"]
        ),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", default="data/bench_sampler")
    parser.add_argument("--num_rows", type=int, default=200_000)
    parser.add_argument("--num_items", type=int, default=100_000)
    parser.add_argument("--num_users", type=int, default=100_000)
    parser.add_argument("--batch_size", type=int, default=8192)
    parser.add_argument("--num_sample", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    text = json.dumps(run(args), sort_keys=True)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
