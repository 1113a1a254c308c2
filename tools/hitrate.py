"""Full-corpus retrieval evaluation of an export: hitrate and recall@K.

python tools/hitrate.py --export_dir X --user_gt_input GT \
    [--top_k 10,50,100] [--exact] [--popularity --train_input_path T]

GT is Parquet: the user tower's input columns, the ground-truth item ids
(--gt_items_field, a list or ","-joined) and optionally the items each
user already saw (--seen_items_field), which are excluded. Users are
embedded with X/user and retrieve from X/item_index by ScaNN and by exact
search (on a sample of --exact_sample_users, all with --exact). Prints one
JSON line, with the index's tuning (target and measured recall@100, query
sample, QPS) from its index.json; definitions in docs/retrieval_eval.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

try:
    from easymatch import cli
except ModuleNotFoundError:  # run as a script from a checkout, not installed
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    from easymatch import cli

SEEN_ITEMS = "seen_items"


def top_k_list(text: str) -> list[int]:
    try:
        ks = sorted({int(k) for k in text.split(",")})
    except ValueError:
        ks = []
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError(f"not a list of K >= 1: {text!r}")
    return ks


def main(args: argparse.Namespace) -> None:
    import pyarrow.parquet as pq

    from easymatch.errors import EasyMatchError
    from easymatch.export.embedding_table import parquet_files
    from easymatch.retrieval_eval import evaluate

    if args.popularity and not args.train_input_path:
        raise EasyMatchError("--popularity needs --train_input_path")
    seen = args.seen_items_field
    if seen is None:
        # The default column is optional; a named one must exist.
        first = parquet_files(args.user_gt_input)[0]
        seen = SEEN_ITEMS if SEEN_ITEMS in pq.read_schema(first).names else ""
    report = evaluate(
        args.export_dir,
        args.user_gt_input,
        args.top_k,
        gt_field=args.gt_items_field,
        seen_field=seen or None,
        exact=args.exact,
        exact_sample=args.exact_sample_users,
        popularity_path=args.train_input_path if args.popularity else None,
        popularity_field=args.train_item_field,
        batch_size=args.batch_size,
    )
    print(json.dumps(report))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--export_dir", required=True)
    parser.add_argument("--user_gt_input", required=True)
    parser.add_argument("--top_k", type=top_k_list, default=[10, 50, 100])
    parser.add_argument("--gt_items_field", default="gt_items")
    parser.add_argument(
        "--seen_items_field",
        default=None,
        help=f'excluded items; default {SEEN_ITEMS!r} if present, "" = none',
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="exact search for every user, and report its hitrate",
    )
    parser.add_argument("--exact_sample_users", type=int, default=1000)
    parser.add_argument(
        "--popularity",
        action="store_true",
        help="also report the most-popular-in-train baseline",
    )
    parser.add_argument("--train_input_path", default=None)
    parser.add_argument("--train_item_field", default="item_id")
    parser.add_argument("--batch_size", type=int, default=1024)
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
