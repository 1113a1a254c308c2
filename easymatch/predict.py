"""python -m easymatch.predict: embeddings of input rows from a tower.

Runs an exported tower (export_dir/user or export_dir/item) on
--predict_input_path and writes `<predict_output_path>/part-0.parquet`:
the reserved columns, then the embedding as list<float>.
"""

from __future__ import annotations

import argparse

from easymatch import cli


def main(args) -> None:
    from easymatch.export.predictor import predict

    args.error_log_dir = args.predict_output_path
    predict(
        args.scripted_model_path,
        args.predict_input_path,
        args.predict_output_path,
        reserved_columns=_names(args.reserved_columns),
        output_columns=_names(args.output_columns),
        batch_size=args.batch_size,
        dataset_type=args.dataset_type,
        edit_config_json=args.edit_config_json,
        predict_steps=args.predict_steps,
    )


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    # No --pipeline_config_path: as in TorchEasyRec, the config is the one
    # export wrote into the tower directory.
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scripted_model_path",
        required=True,
        help="an exported tower: export_dir/user or export_dir/item",
    )
    parser.add_argument("--predict_input_path", required=True)
    parser.add_argument("--predict_output_path", required=True)
    parser.add_argument(
        "--reserved_columns",
        default=None,
        help="comma-separated input columns copied to the output",
    )
    parser.add_argument(
        "--output_columns",
        default=None,
        help="model outputs to write: user_tower_emb or item_tower_emb",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=None,
        help="default: data_config.eval_batch_size, else batch_size",
    )
    parser.add_argument(
        "--dataset_type",
        default=None,
        help="ParquetDataset or CsvDataset (default: data_config's)",
    )
    parser.add_argument(
        "--writer_type",
        default="ParquetWriter",
        choices=["ParquetWriter"],
        help="output format; only Parquet",
    )
    parser.add_argument(
        "--edit_config_json",
        default="",
        help="edits of the tower's pipeline.config, e.g. its data_config",
    )
    parser.add_argument(
        "--predict_steps",
        type=int,
        default=None,
        help="stop after this many batches",
    )
    cli.add_verbose(parser)
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
