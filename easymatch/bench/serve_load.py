"""easymatch.serve under load: `retrieval` on loopback against the same
search in process.

A freshly initialised model of the config is exported (a real user
tower); its item index is replaced by a synthetic clustered corpus of the
tower's width, since only the corpus size matters to search cost. For each
corpus size a server process serves the export, and `concurrency` gRPC
clients (coroutines of one grpc.aio client process, this one) each send
single-user requests back to back, `requests` in total per level.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time

import grpc
import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from easymatch.bench.serving import fresh_export, typed_value
from easymatch.export.index_tuning import tune_index
from easymatch.export.scann_index import ItemIndex
from easymatch.serve.process import ServeProcess
from easymatch.specs.derive import retrieval_spec

USERS = 256  # distinct request rows, cycled
TOP_K = 100


def percentiles(latencies_ms: list[float]) -> dict:
    return {
        "p50_ms": float(np.percentile(latencies_ms, 50)),
        "p99_ms": float(np.percentile(latencies_ms, 99)),
    }


def user_rows(config, user_dir: str) -> tuple[dict, list[dict]]:
    """(dtypes, USERS single-row inputs) of the user tower's signature."""
    serve = tf.saved_model.load(user_dir).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    table = pq.read_table(config.train_input_path).slice(0, USERS)
    rows = [
        {n: typed_value(row[n], spec.dtype) for n, spec in specs.items()}
        for row in table.to_pylist()
    ]
    return {n: spec.dtype for n, spec in specs.items()}, rows


def synthetic_index(num_items: int, dim: int, similarity: str) -> ItemIndex:
    """Clustered items (1000 centres plus noise), indexed as exports do:
    tuned to the default target recall."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, dim)).astype(np.float32)
    items = centres[rng.integers(0, len(centres), num_items)]
    items += 0.1 * rng.normal(size=items.shape).astype(np.float32)
    return tune_index(items, np.arange(num_items), similarity)


def in_process(user_dir: str, index: ItemIndex, dtypes, rows, n: int):
    """Single-user requests in this process: user tower, then search."""
    serve = tf.saved_model.load(user_dir).signatures["serving_default"]
    inputs = [
        {k: tf.constant([v], dtypes[k]) for k, v in row.items()} for row in rows
    ]
    latencies = []
    for i in range(n + 20):
        start = time.perf_counter()
        query = serve(**inputs[i % len(inputs)])["user_tower_emb"].numpy()
        index.search_rows(query, TOP_K)
        if i >= 20:  # the first calls trace and warm up
            latencies.append((time.perf_counter() - start) * 1e3)
    seconds = sum(latencies) / 1e3
    return {"qps": n / seconds, **percentiles(latencies)}


async def load(port: int, requests: list, total: int, concurrency: int):
    latencies: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for request in requests[:8]:  # warm the connection
            await stub.Predict(request, timeout=60)
        counter = iter(range(total))

        async def client() -> None:
            for i in counter:
                start = time.perf_counter()
                await stub.Predict(requests[i % len(requests)], timeout=60)
                latencies.append((time.perf_counter() - start) * 1e3)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {"qps": total / seconds, **percentiles(latencies)}


def predict_requests(dtypes, rows) -> list:
    requests = []
    for row in rows:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "retrieval"
        for name, value in row.items():
            request.inputs[name].CopyFrom(
                tf.make_tensor_proto([value], dtypes[name])
            )
        request.inputs["top_k"].CopyFrom(tf.make_tensor_proto(TOP_K))
        requests.append(request)
    return requests


def serve_load(
    config, item_counts: list[int], requests: int, concurrency: list[int]
) -> dict:
    work = tempfile.mkdtemp(prefix="easymatch-bench-serve-")
    try:
        return _serve_load(config, work, item_counts, requests, concurrency)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _serve_load(
    config, work: str, item_counts, requests: int, concurrency
) -> dict:
    paths, _ = fresh_export(config, work)
    dtypes, rows = user_rows(config, paths["user"])
    width = int(
        tf.saved_model.load(paths["user"])
        .signatures["serving_default"]
        .structured_outputs["user_tower_emb"]
        .shape[-1]
    )
    similarity = retrieval_spec(config).similarity
    result = {"requests_per_level": requests, "top_k": TOP_K}
    for num_items in item_counts:
        base = os.path.join(work, f"served_{num_items}")
        os.makedirs(base)
        for side in ("user", "item"):
            os.symlink(paths[side], os.path.join(base, side))
        index = synthetic_index(num_items, width, similarity)
        index.save(os.path.join(base, "item_index"))
        figures = {
            "params": index.params,
            "index_recall@100": index.info["tuning"]["recall"],
            "in_process_single_user": in_process(
                paths["user"], index, dtypes, rows, requests
            ),
        }
        del index
        server = ServeProcess(base)
        try:
            server.wait_for(1, "retrieval")
            messages = predict_requests(dtypes, rows)
            for level in concurrency:
                figures[f"served_concurrency_{level}"] = asyncio.run(
                    load(server.grpc_port, messages, requests, level)
                )
            figures["server_exit_status"] = server.terminate()
        finally:
            server.kill()
        result[str(num_items)] = figures
    return result
