"""MovieLens (RecBole atomic format) → train/test Parquet for easymatch.

python tools/prepare_movielens.py --input_dir ../shared/data/ml-100k \
    --output_dir data/ml-100k

Every rating is an implicit positive; each user's last interaction by
(timestamp, item_id) is held out. Writes train.parquet, test.parquet,
test_gt.parquet (for tools/hitrate.py) and item.parquet; see
easymatch/data/movielens.py.
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
    from easymatch.data.movielens import prepare

    summary = prepare(args.input_dir, args.output_dir, seed=args.seed)
    for key, value in summary.items():
        print(f"{key}: {value}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input_dir", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--seed", type=int, default=0, help="order of the training rows"
    )
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
