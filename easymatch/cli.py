"""What every CLI shares: flags, config loading and one-line errors."""

from __future__ import annotations

import os

# Before TensorFlow is imported anywhere: keep its C++ start-up chatter
# (CUDA probing on CPU-only machines included) out of the users' consoles;
# real failures still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402

from easymatch.config import load_pipeline_config  # noqa: E402
from easymatch.errors import EasyMatchError  # noqa: E402


def parser(description: str) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--pipeline_config_path",
        required=True,
        help="pipeline config in protobuf text format",
    )
    result.add_argument(
        "--edit_config_json",
        default="",
        help='JSON of dotted path → value, e.g. {"data_config.batch_size":32}',
    )
    return result


def load_config(args: argparse.Namespace, **overrides: str | None):
    """Loads, edits and overrides (non-empty flags win) the config."""
    # Edits apply before validation, so they can repair a config.
    config = load_pipeline_config(
        args.pipeline_config_path, args.edit_config_json or None
    )
    for field, value in overrides.items():
        if value:
            setattr(config, field, value)
    return config


def run(main: Callable[[argparse.Namespace], None], args) -> None:
    """Runs a CLI body; user-facing problems end as one line, exit 2."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("easymatch").setLevel(logging.INFO)
    try:
        main(args)
    except EasyMatchError as error:
        print(f"easymatch: error: {error}", file=sys.stderr)
        sys.exit(2)
