"""python -m easymatch.export: export the user and item towers.

Writes `<export_dir>/user` and `<export_dir>/item`, TF SavedModels taking
the raw input columns, and with an item corpus `<export_dir>/item_index`
and `<export_dir>/retrieval` (docs/export.md). The checkpoint is
--checkpoint_path, else the best one by export_config for exporter_type
"best", else the latest in model_dir.
"""

from __future__ import annotations

from easymatch import cli


def main(args) -> None:
    from easymatch.export.export_model import export
    from easymatch.run_context import RunContext

    config = cli.load_config(args, model_dir=args.model_dir)
    # The feature set and specs, built once; no training data is read.
    paths = export(
        RunContext(config),
        args.checkpoint_path,
        args.export_dir,
        item_input_path=args.item_input_path,
        asset_files=[p for p in (args.asset_files or "").split(",") if p],
        top_k=args.top_k,
        target_recall=args.target_recall,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")


def build_parser():
    parser = cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--model_dir", default=None)
    parser.add_argument(
        "--checkpoint_path",
        default=None,
        help="checkpoint prefix or directory (default: per export_config)",
    )
    parser.add_argument(
        "--export_dir", required=True, help="must not exist yet"
    )
    parser.add_argument(
        "--asset_files",
        default=None,
        help="comma-separated files copied into each tower directory",
    )
    parser.add_argument(
        "--item_input_path",
        default=None,
        help="item corpus: warmup rows of the item tower, and the items of "
        "export_dir/item_index and export_dir/retrieval",
    )
    parser.add_argument(
        "--top_k",
        type=int,
        default=None,
        help="items per user of export_dir/retrieval (default: "
        "export_config.retrieval_top_k, 100)",
    )
    parser.add_argument(
        "--target_recall",
        type=float,
        default=None,
        help="recall@100 vs exact search the item index must reach, in "
        "(0, 1] (default: export_config.index_target_recall, 0.95)",
    )
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
