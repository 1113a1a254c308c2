"""Benchmarks; prints one JSON object and writes it to --output.

python tools/bench.py [--quick]
    [--only pipeline,sampler,train,tables,export,scann,retrieval,serve]
    [--only logq] [--only distributed [--layouts 2_workers_2_ps]]
    [--data_dir DIR] [--output bench.json]

Figures are measured here, on this machine, and never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from gen_taobao_data import generate  # noqa: E402

from easymatch.bench import (  # noqa: E402
    retrieval,
    serve_load,
    serving,
    training,
)

TAOBAO_CONFIG = os.path.join(ROOT, "samples", "dssm_taobao.config")
PARTS = (
    "pipeline",
    "sampler",
    "train",
    "tables",
    "export",
    "scann",
    "retrieval",
    "serve",
)
# logQ options against the planted oracle (tools/bench_logq.py): minutes
# of training per option, so only on request.
# A 10M-row user table trained by one process and by a loopback cluster
# (easymatch/bench/distributed.py): GBs per task, so only on request.
ON_REQUEST = ("logq", "distributed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(PARTS))
    parser.add_argument("--data_dir", default="data/bench")
    parser.add_argument("--output", default="bench.json")
    parser.add_argument(
        "--layouts",
        default="",
        help="the distributed part's layouts, comma-separated (default: "
        "all of easymatch/bench/distributed.py's LAYOUTS)",
    )
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS) - set(ON_REQUEST))
    if unknown:
        parser.error(
            f"unknown parts {unknown}; choose from {PARTS + ON_REQUEST}"
        )
    quick = args.quick
    started = time.perf_counter()
    rows = 40_000 if quick else 400_000
    data_dir = os.path.join(args.data_dir, "quick" if quick else "full")
    if not os.path.exists(os.path.join(data_dir, "train.parquet")):
        generate(
            data_dir,
            num_users=100_000,
            num_items=50_000,
            num_rows=rows,
            seed=0,
        )
    result: dict = {"quick": quick, "machine_cores": os.cpu_count()}
    batch_sizes = [1024] if quick else [1024, 8192]

    def config(batch_size: int, **overrides):
        return training.taobao_config(
            TAOBAO_CONFIG, data_dir, batch_size, **overrides
        )

    if "train" in parts:
        result["train"] = {
            str(b): training.training_throughput(
                config(b), steps=16 if quick else 64
            )
            for b in batch_sizes
        }
        result["train_bf16"] = {
            str(b): training.training_throughput(
                config(b, mixed_precision="BF16"), steps=16 if quick else 64
            )
            for b in batch_sizes
        }
        # Before/after steps_per_execution, on one model, taking turns.
        result["train_step_ms_by_steps_per_execution"] = {
            str(b): training.step_ms_by_steps_per_execution(
                config(b),
                [1, 8],
                steps=max((16 if quick else 48) * 1024 // b, 8),
                rounds=1 if quick else 5,
            )
            for b in batch_sizes
        }
    if "pipeline" in parts:
        result["pipeline"] = {
            str(b): training.pipeline_throughput(
                config(b),
                batches=(30 if quick else 400) * 1024 // b,
                warmup=(10 if quick else 60) * 1024 // b,
            )
            for b in batch_sizes
        }
    if "pipeline" in parts and "train" in parts:
        result["pipeline_to_train_ratio"] = {
            size: result["pipeline"][size]["batches_per_sec"]
            / result["train"][size]["steps_per_sec"]
            for size in result["pipeline"]
        }
    if "tables" in parts:
        sizes = [10_000, 1_000_000] if quick else [10_000, 1_000_000, 10**7]
        step_ms = training.table_scaling(
            sizes,
            batch_size=1024,
            steps=5 if quick else 20,
            rounds=2 if quick else 5,
        )
        result["table_step_ms"] = step_ms
        result["table_step_ratio_largest_vs_10k"] = (
            step_ms[str(sizes[-1])] / step_ms[str(sizes[0])]
        )
    if "sampler" in parts:
        from bench_pipeline import run as sampler_pipeline

        result["sampler_pipeline"] = sampler_pipeline(
            argparse.Namespace(
                data_dir=os.path.join(args.data_dir, "sampler"),
                num_rows=20_000 if quick else 200_000,
                num_items=10_000 if quick else 100_000,
                num_users=10_000 if quick else 100_000,
                batch_size=1024 if quick else 8192,
                num_sample=1024,
                batches=3 if quick else 20,
                steps=3 if quick else 10,
            )
        )
    if "export" in parts:
        result.update(
            serving.export_and_latency(
                training.taobao_config(TAOBAO_CONFIG, data_dir, 1024),
                requests=50 if quick else 500,
            )
        )
    if "scann" in parts:
        corpora = [("clustered", 50_000)]
        if not quick:
            corpora = [
                (kind, size)
                for size in (50_000, 1_000_000)
                for kind in ("clustered", "uniform")
            ]
        # Tuned to recall@100 >= 0.95, measured on held-out queries.
        result["scann"] = {
            f"{kind}_{size}": retrieval.tuned_index(
                kind, size, dim=64, queries=2000
            )
            for kind, size in corpora
        }
    if "retrieval" in parts:
        result["retrieval_model"] = retrieval.retrieval_latency(
            training.taobao_config(TAOBAO_CONFIG, data_dir, 1024),
            sizes=[20_000] if quick else [100_000, 1_000_000],
            requests=20 if quick else 300,
        )
    if "serve" in parts:
        result["serve"] = serve_load.serve_load(
            training.taobao_config(TAOBAO_CONFIG, data_dir, 1024),
            item_counts=[20_000] if quick else [100_000, 1_000_000],
            requests=300 if quick else 5000,
            concurrency=[1, 8] if quick else [1, 8, 32],
        )
    if "logq" in parts:
        from bench_logq import OPTIONS as LOGQ_OPTIONS
        from bench_logq import run as logq_options

        result["logq"] = logq_options(
            os.path.join(args.data_dir, "planted"),
            seeds=[0] if quick else [0, 1, 2],
            options=(
                ["none", "streaming", "train_counts"]
                if quick
                else list(LOGQ_OPTIONS)
            ),
            num_epochs=5,
        )
    if "distributed" in parts:
        from easymatch.bench import distributed

        result["distributed"] = distributed.distributed(
            distributed.user_table_config(
                config(1024),
                user_rows=10**6 if quick else 10**7,
                steps=20 if quick else 60,
            ),
            {
                name: layout
                for name, layout in distributed.LAYOUTS.items()
                if not args.layouts or name in args.layouts.split(",")
            },
            timeout=3600,
        )
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["peak_rss_mb"] = peak_kib / 1024.0
    result["seconds"] = time.perf_counter() - started
    text = json.dumps(result, sort_keys=True)
    with open(args.output, "w") as handle:
        handle.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
