"""Builds an item index (ScaNN) from a predict output, like TorchEasyRec's
tools/create_faiss_index.py.

python tools/create_scann_index.py --item_embedding_input E \
    --index_output_dir O [--id_field item_id] \
    [--embedding_field item_tower_emb] [--similarity INNER_PRODUCT|COSINE] \
    [--target_recall 0.95] [--query_embedding_input Q \
    [--query_embedding_field user_tower_emb]] \
    [--algorithm brute_force|tree_ah] [--num_leaves N] ...

O receives scann/, item_ids.txt, item_embeddings.npy and index.json
(easymatch/export/scann_index.py). Without ScaNN parameters the index is
tuned until its recall@100 against exact search reaches --target_recall
on a query sample: Q's embeddings (e.g. a predict output of the user
tower), else perturbed item embeddings (easymatch/export/index_tuning.py);
given parameters are used as they are and measured. Prints index.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

try:
    from easymatch import cli
except ModuleNotFoundError:  # run as a script from a checkout, not installed
    sys.path.insert(
        0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    )
    from easymatch import cli

TREE_FLAGS = {
    "num_leaves": int,
    "num_leaves_to_search": int,
    "training_sample_size": int,
    "dims_per_block": int,
    "anisotropic_quantization_threshold": float,
    "reorder": int,
}


def main(args: argparse.Namespace) -> None:
    from easymatch.export.embedding_table import (
        embedding_matrix,
        load_item_embeddings,
        parquet_files,
        read_parquet,
    )
    from easymatch.export.index_tuning import check_target_recall, tune_index

    check_target_recall(args.target_recall)
    ids, embeddings = load_item_embeddings(
        args.item_embedding_input, args.id_field, args.embedding_field
    )
    queries, source = None, None
    if args.query_embedding_input:
        field = args.query_embedding_field
        queries = np.concatenate(
            [
                embedding_matrix(
                    read_parquet(f, [field]).column(field), f, field
                )
                for f in parquet_files(args.query_embedding_input)
            ]
        )
        source = f"{field} of {args.query_embedding_input}"
    overrides = {
        name: getattr(args, name)
        for name in ("algorithm", *TREE_FLAGS)
        if getattr(args, name) is not None
    }
    # Tree flags without --algorithm mean tree_ah (build_index's default).
    index = tune_index(
        embeddings,
        ids,
        args.similarity,
        args.target_recall,
        queries,
        **({"query_source": source} if source else {}),
        params=overrides or None,
    )
    index.save(args.index_output_dir)
    print(json.dumps(index.info))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--item_embedding_input",
        "--embedding_input_path",
        required=True,
        help="Parquet file(s), glob or directory: item id + embedding",
    )
    parser.add_argument("--index_output_dir", required=True)
    parser.add_argument("--id_field", default="item_id")
    parser.add_argument(
        "--embedding_field",
        default="item_tower_emb",
        help='list<float> column or ","-joined string',
    )
    parser.add_argument(
        "--similarity",
        choices=["INNER_PRODUCT", "COSINE"],
        default="INNER_PRODUCT",
        help="the model's similarity (the DSSM default is INNER_PRODUCT)",
    )
    parser.add_argument(
        "--target_recall",
        type=float,
        default=0.95,
        help="recall@100 vs exact search to tune to, in (0, 1]",
    )
    parser.add_argument(
        "--query_embedding_input",
        default=None,
        help="Parquet of query embeddings to tune on (default: perturbed "
        "item embeddings)",
    )
    parser.add_argument("--query_embedding_field", default="user_tower_emb")
    parser.add_argument("--algorithm", choices=["brute_force", "tree_ah"])
    for name, kind in TREE_FLAGS.items():
        parser.add_argument(f"--{name}", type=kind, help="tree_ah only")
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
