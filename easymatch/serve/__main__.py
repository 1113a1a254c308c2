"""python -m easymatch.serve: serve an export over TF Serving's APIs.

Models `user`, `item` (the tower SavedModels) and `retrieval` (user
columns → item_ids, scores via the item index) of the newest version in
--model_base_path: a training exporter's export/best or export/latest
(numeric version directories), or one export directory (version 1).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os

from easymatch import cli
from easymatch.serve.server import Options, serve


def main(args: argparse.Namespace) -> None:
    asyncio.run(serve(Options(**vars(args))))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Options("")
    help_text = {
        "model_base_path": "export/best, export/latest or an export dir",
        "model_name": "prefix of the model names ('dssm_' → dssm_user, …)",
        "host": "address to bind (0.0.0.0 to accept remote clients)",
        "port": "gRPC port (0: any free port, printed at start)",
        "rest_api_port": "REST port (0: any free port, printed at start)",
        "top_k": "items retrieval returns unless a request sets top_k",
        "file_system_poll_wait_seconds": "how often to look for versions",
        "max_batch_size": "rows per batch; larger requests are refused",
        "batch_timeout_micros": "wait this long for a batch to fill",
        "num_batch_threads": "batches run at once",
        "max_enqueued_batches": "queue limit per signature, in batches",
        "max_request_bytes": "largest request body (gRPC and REST)",
        "drain_seconds": "on SIGTERM, wait this long for open requests",
    }
    for field in dataclasses.fields(Options):
        default = getattr(defaults, field.name)
        if field.name == "model_base_path":
            parser.add_argument(
                "--model_base_path", required=True, help=help_text[field.name]
            )
            continue
        if field.name == "num_batch_threads":
            default = os.cpu_count() or 1
        parser.add_argument(
            f"--{field.name}",
            type=type(default),
            default=default,
            help=f"{help_text[field.name]} (default {default!r})",
        )
    return parser


if __name__ == "__main__":
    cli.run(main, build_parser().parse_args())
