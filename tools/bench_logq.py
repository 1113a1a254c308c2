"""logQ options against a Bayes-optimal oracle; prints one JSON object.

python tools/bench_logq.py [--data_dir data/bench/planted] [--seeds 0]
    [--options none,streaming,...] [--num_epochs 5] [--output F]

For each seed: planted-structure data (tools/gen_planted_data.py, that
seed), then samples/dssm_planted.config trained once per logQ option with
the same data and seed. Each trained model ranks every item for every
user by its tower scores; its Recall@K is the expected recall of a fresh
draw, Σ_{j in its top K} P(j | u) under the true distribution, averaged
over users (no test-draw noise), reported over the oracle's (which ranks
by the true score). `test_hits@K` is the plain hit rate on the held-out
test.parquet draws, for comparison. Figures are measured, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import tensorflow as tf  # noqa: E402
from gen_planted_data import (  # noqa: E402
    expected_recall,
    generate,
    hits_at_k,
    softmax,
    true_scores,
)

from easymatch import checkpoint as checkpoints  # noqa: E402
from easymatch.config import load_pipeline_config  # noqa: E402
from easymatch.run_context import RunContext  # noqa: E402
from easymatch.training.loop import train_and_evaluate  # noqa: E402

CONFIG = os.path.join(ROOT, "samples", "dssm_planted.config")
TOP_KS = (10, 50, 100)
# Option name → candidate_probability (None: no logQ correction).
# "streaming" is Yi et al.'s algorithm as published (the estimator before
# count_repeats existed).
YI = {"count_repeats": False}
OPTIONS: dict[str, dict | None] = {
    "none": None,
    "streaming": {"streaming": YI},
    "streaming_1k_buckets": {"streaming": {**YI, "num_buckets": 1024}},
    "streaming_repeats": {"streaming": {"count_repeats": True}},
    "streaming_repeats_64k_buckets": {
        "streaming": {"count_repeats": True, "num_buckets": 1 << 16}
    },
    "streaming_repeats_warm": {
        "streaming": {"count_repeats": True, "warm_start": True}
    },
    "train_counts": {"train_counts": {}},
}


def option_config(data_dir: str, model_dir: str, option, num_epochs: int):
    edits = {
        "train_input_path": os.path.join(data_dir, "train.parquet"),
        "eval_input_path": os.path.join(data_dir, "eval.parquet"),
        "model_dir": model_dir,
        "train_config.num_epochs": num_epochs,
        "train_config.save_checkpoints_epochs": num_epochs,
    }
    config = load_pipeline_config(CONFIG, json.dumps(edits))
    dssm = config.model_config.dssm
    dssm.ClearField("candidate_probability")
    dssm.logq_correction = option is not None
    if option is not None:
        ((source, fields),) = option.items()
        target = getattr(dssm.candidate_probability, source)
        target.SetInParent()
        for name, value in fields.items():
            setattr(target, name, value)
    return config


def tower_scores(config, num_users: int, num_items: int) -> np.ndarray:
    """[U, I] scores of the trained towers, for every user and item."""
    run = RunContext(config)
    feature_set = run.feature_set
    model = run.create_model()
    checkpoints.restore(model, config.model_dir, with_optimizers=False)

    def embed(side: str, count: int) -> np.ndarray:
        ids = tf.constant([str(i) for i in range(count)])
        other = tf.constant(["0"] * count)
        columns = {"user_id": ids, "item_id": other}
        if side == "item":
            columns = {"user_id": other, "item_id": ids}
        features = feature_set.transform(columns)
        method = model.embed_users if side == "user" else model.embed_items
        return method(features)[0].numpy()

    return embed("user", num_users) @ embed("item", num_items).T


def run_seed(
    data_dir: str, seed: int, options: list[str], num_epochs: int
) -> dict:
    data_dir = os.path.join(data_dir, f"seed{seed}")
    if not os.path.exists(os.path.join(data_dir, "truth.npz")):
        generate(data_dir, seed=seed)
    truth = np.load(os.path.join(data_dir, "truth.npz"))
    scores = true_scores(
        truth["user_factors"], truth["item_factors"], truth["log_pop"]
    )
    probabilities = softmax(scores)
    users = np.arange(scores.shape[0])
    test = pq.read_table(os.path.join(data_dir, "test.parquet"))
    test_users = test.column("user_id").to_numpy()
    test_items = test.column("item_id").to_numpy()
    oracle = {
        k: expected_recall(scores, probabilities, users, k) for k in TOP_KS
    }
    result: dict = {f"oracle_recall@{k}": oracle[k] for k in TOP_KS}
    for name in options:
        # The run seed of each option's training (training/run_seed.py).
        os.environ["PYTHON_RANDOM_SEED"] = str(seed)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as model_dir:
            config = option_config(
                data_dir, model_dir, OPTIONS[name], num_epochs
            )
            train_and_evaluate(config)
            model_scores = tower_scores(config, *scores.shape)
        row = {"seconds": time.perf_counter() - started}
        for k in TOP_KS:
            recall = expected_recall(model_scores, probabilities, users, k)
            row[f"recall@{k}"] = recall
            row[f"recall@{k}_over_oracle"] = recall / oracle[k]
            row[f"test_hits@{k}"] = hits_at_k(
                model_scores, test_users, test_items, k
            )
        result[name] = row
        print(json.dumps({"seed": seed, name: row}), file=sys.stderr)
    return result


def mean_over_seeds(runs: dict) -> dict:
    names = [n for n in OPTIONS if all(n in r for r in runs.values())]
    return {
        name: {
            f"recall@{k}_over_oracle": float(
                np.mean(
                    [r[name][f"recall@{k}_over_oracle"] for r in runs.values()]
                )
            )
            for k in TOP_KS
        }
        for name in names
    }


def run(
    data_dir: str, seeds: list[int], options: list[str], num_epochs: int
) -> dict:
    """The bench's JSON: per seed and option, and the mean over seeds."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown options {unknown}; choose from {list(OPTIONS)}"
        )
    started = time.perf_counter()
    runs = {
        str(seed): run_seed(data_dir, seed, options, num_epochs)
        for seed in seeds
    }
    return {
        "machine_cores": os.cpu_count(),
        "num_epochs": num_epochs,
        "seeds": runs,
        "mean": mean_over_seeds(runs),
        "seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data_dir", default="data/bench/planted")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--options", default=",".join(OPTIONS))
    parser.add_argument("--num_epochs", type=int, default=5)
    parser.add_argument("--output", default="bench_logq.json")
    args = parser.parse_args()
    try:
        result = run(
            args.data_dir,
            [int(s) for s in args.seeds.split(",")],
            [o for o in args.options.split(",") if o],
            args.num_epochs,
        )
    except ValueError as error:
        parser.error(str(error))
    text = json.dumps(result, sort_keys=True)
    with open(args.output, "w") as handle:
        handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
