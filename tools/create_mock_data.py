"""Writes mock data for a pipeline config, as TorchEasyRec's tests do.

    python tools/create_mock_data.py --pipeline_config_path C \\
        --output_dir D [--num_rows N] [--num_steps S] [--seed K]

D gets train.parquet, eval.parquet (N rows each, default 4 × batch_size),
the sampler tables of C's sampler, tokenizer files C names that do not
exist, and D/pipeline.config: C with every input path in D, ParquetDataset,
model_dir D/model and, with S, num_steps S (num_epochs cleared). The same
arguments give byte-identical files (easymatch/data/mock_data.py).
"""

from __future__ import annotations

import argparse
import os
import sys

try:
    from easymatch import cli
except ModuleNotFoundError:  # run as a script from a checkout, not installed
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    from easymatch import cli


def main(args: argparse.Namespace) -> None:
    from easymatch.config import load_pipeline_config
    from easymatch.data.mock_data import create_mock_data

    path = create_mock_data(
        args.pipeline_config_path,
        args.output_dir,
        num_rows=args.num_rows,
        num_steps=args.num_steps,
        seed=args.seed,
    )
    load_pipeline_config(path)  # the written config must be valid
    print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline_config_path", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_rows", type=int, default=None)
    parser.add_argument("--num_steps", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
