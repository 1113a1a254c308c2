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
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402

from easymatch.config import load_pipeline_config  # noqa: E402
from easymatch.errors import EasyMatchError, disk_error  # noqa: E402

ERROR_LOG = "error.log"


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
    add_verbose(result)
    return result


def add_verbose(result: argparse.ArgumentParser) -> None:
    result.add_argument(
        "--verbose",
        action="store_true",
        help="print an internal error's traceback instead of writing it to "
        f"model_dir/{ERROR_LOG}",
    )


def load_config(args: argparse.Namespace, **overrides: str | None):
    """Loads, edits and overrides (non-empty flags win) the config."""
    # Edits apply before validation, so they can repair a config.
    config = load_pipeline_config(
        args.pipeline_config_path, args.edit_config_json or None
    )
    for field, value in overrides.items():
        if value:
            setattr(config, field, value)
    # Where an internal error's traceback goes (see `run`).
    args.error_log_dir = config.model_dir
    return config


def run(main: Callable[[argparse.Namespace], None], args) -> None:
    """Runs a CLI body; user-facing problems end as one line, exit 2.

    So is a path that cannot be written (a read-only or full disk). Any
    other exception is easymatch's bug, not the user's: one line says
    so (exit 1) and the traceback goes to `<error_log_dir>/error.log`, or
    to stderr with --verbose or when there is no such directory.
    """
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    logging.getLogger("easymatch").setLevel(logging.INFO)
    try:
        seed_everything()
        main(args)
    except EasyMatchError as error:
        print(f"easymatch: error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - reported, not swallowed
        # A read-only or full disk is the user's to fix, wherever it hit.
        disk = disk_error(error)
        if disk is not None:
            print(f"easymatch: error: {disk}", file=sys.stderr)
            sys.exit(2)
        report_internal_error(error, args)
        sys.exit(1)


def seed_everything() -> None:
    """$PYTHON_RANDOM_SEED, when set, seeds Python, NumPy, TF and Keras in
    every CLI. Training then seeds them with its run seed (the recorded
    one on a resume, training/run_seed.py); eval, export and predict
    draw and record nothing."""
    from easymatch.training.run_seed import env_seed, seed_keras

    seed = env_seed()
    if seed is not None:
        seed_keras(seed)


def report_internal_error(error: Exception, args) -> None:
    text = "".join(traceback.format_exception(error))
    summary = str(error).strip().splitlines()
    headline = f"{type(error).__name__}: {summary[0][:300] if summary else ''}"
    log_dir = getattr(args, "error_log_dir", None)
    where = "above"
    if getattr(args, "verbose", False) or not log_dir:
        sys.stderr.write(text)
    else:
        path = os.path.join(log_dir, ERROR_LOG)
        try:
            os.makedirs(log_dir, exist_ok=True)
            with open(path, "a") as handle:
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                handle.write(f"{stamp} {' '.join(sys.argv)}\n{text}\n")
            where = f"in {path}"
        except OSError:
            sys.stderr.write(text)
    print(
        f"easymatch: internal error (a bug in easymatch, not in your "
        f"config or data; traceback {where}): {headline}",
        file=sys.stderr,
    )
