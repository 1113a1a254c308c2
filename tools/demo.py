"""The README's demo: generate data, train, evaluate, compare with random.

python tools/demo.py [--output_dir DIR] [--model_dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from gen_taobao_data import generate  # noqa: E402

CONFIG = os.path.join(ROOT, "samples", "dssm_demo.config")


def run(module: str, *args: str) -> None:
    subprocess.run([sys.executable, "-m", module, *args], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", default="data/demo")
    parser.add_argument("--model_dir", default="experiments/dssm_demo")
    args = parser.parse_args()
    summary = generate(
        args.output_dir,
        num_users=2000,
        num_items=1000,
        num_rows=100000,
        seed=42,
    )
    print(f"generated {summary['train_rows']:.0f} training rows")
    edits = json.dumps(
        {
            "train_input_path": os.path.join(args.output_dir, "train.parquet"),
            "eval_input_path": os.path.join(args.output_dir, "eval.parquet"),
            "model_dir": args.model_dir,
        }
    )
    common = ["--pipeline_config_path", CONFIG, "--edit_config_json", edits]
    run("easymatch.train_eval", *common)
    run("easymatch.eval", *common)
    with open(os.path.join(args.model_dir, "eval_result.txt")) as handle:
        result = json.load(handle)
    # In-batch recall ranks each user's item among the eval batch's items.
    batch = 256
    print(f"\nin-batch Recall@K over eval batches of {batch} items")
    print(f"{'K':>4} {'easymatch':>10} {'random':>8}")
    ks = sorted(int(k.split("@")[1]) for k in result if "recall@" in k)
    for k in ks:
        print(f"{k:>4} {result[f'recall@{k}']:>10.4f} {k / batch:>8.4f}")


if __name__ == "__main__":
    main()
