"""Runs the gRPC and REST servers on one event loop until SIGTERM/SIGINT,
then drains: both stop accepting, requests already received (queued or
running in a batch) are answered, and the process exits 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from dataclasses import dataclass

import grpc
from aiohttp import web

from easymatch.errors import EasyMatchError
from easymatch.serve.batcher import Batcher
from easymatch.serve.grpc_service import add_services
from easymatch.serve.registry import Registry
from easymatch.serve.rest_app import make_app
from easymatch.serve.service import Service

logger = logging.getLogger("easymatch")


@dataclass
class Options:
    model_base_path: str
    model_name: str = ""
    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int = 8501
    top_k: int = 100
    file_system_poll_wait_seconds: float = 1.0
    max_batch_size: int = 128
    batch_timeout_micros: int = 0
    num_batch_threads: int = 2
    max_enqueued_batches: int = 100
    max_request_bytes: int = 16 << 20
    drain_seconds: float = 30.0

    def check(self) -> None:
        """Flags that must be positive, as one-line errors."""
        for name in (
            "top_k",
            "file_system_poll_wait_seconds",
            "max_batch_size",
            "num_batch_threads",
            "max_enqueued_batches",
            "max_request_bytes",
        ):
            if getattr(self, name) <= 0:
                raise EasyMatchError(f"--{name} must be > 0")
        for name in ("port", "rest_api_port"):
            if not 0 <= getattr(self, name) < 65536:
                raise EasyMatchError(f"--{name} must be a port (0: any)")


async def serve(options: Options) -> None:
    options.check()
    registry = Registry(
        options.model_base_path, options.top_k, options.model_name
    )
    registry.scanner.newest_ready()  # fails fast on a wrong base path
    stop_watching = threading.Event()
    watcher = threading.Thread(
        target=registry.watch,
        args=(stop_watching, options.file_system_poll_wait_seconds),
        name="version-watcher",
        daemon=True,
    )
    watcher.start()
    service = Service(
        registry,
        Batcher(
            options.max_batch_size,
            options.batch_timeout_micros,
            options.num_batch_threads,
            options.max_enqueued_batches,
        ),
    )
    size = options.max_request_bytes
    grpc_server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", -1),
        ]
    )
    add_services(grpc_server, service)
    address = f"{options.host}:{options.port}"
    try:
        grpc_port = grpc_server.add_insecure_port(address)
    except RuntimeError as error:
        raise EasyMatchError(
            f"--port: cannot bind {address}: {error}"
        ) from None
    await grpc_server.start()
    runner = web.AppRunner(
        make_app(service, size),
        shutdown_timeout=options.drain_seconds,
        access_log=None,
        handle_signals=False,
    )
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.rest_api_port)
    try:
        await site.start()
    except OSError as error:
        await grpc_server.stop(None)
        raise EasyMatchError(
            f"--rest_api_port: cannot bind {options.host}:"
            f"{options.rest_api_port}: {error.strerror}"
        ) from None
    rest_port = runner.addresses[0][1]
    print(
        f"easymatch.serve: gRPC on {options.host}:{grpc_port}, REST on "
        f"{options.host}:{rest_port}, models "
        f"{', '.join(registry.names)} from {options.model_base_path}",
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("draining")
    await asyncio.gather(
        grpc_server.stop(options.drain_seconds), runner.cleanup()
    )
    await service.batcher.drain()
    stop_watching.set()
    watcher.join()
    logger.info("stopped")
