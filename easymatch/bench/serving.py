"""Export time and user-tower request latency."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from easymatch import checkpoint as checkpoints
from easymatch.export.export_model import export
from easymatch.run_context import RunContext


def fresh_export(config, work: str) -> tuple[dict[str, str], float]:
    """Exports a freshly initialised model into `work`/export: (paths,
    seconds the export took)."""
    run = RunContext(config)
    model = run.create_model()
    manager = checkpoints.make_manager(
        checkpoints.make_checkpoint(model), work, 1
    )
    checkpoint = manager.save(checkpoint_number=1)
    start = time.perf_counter()
    paths = export(run, checkpoint, os.path.join(work, "export"))
    return paths, time.perf_counter() - start


def export_and_latency(config, requests: int) -> dict:
    """Seconds to export a freshly initialised model, then p50/p99 ms of
    single-row requests to the user tower's serving_default, in process."""
    paths, export_seconds = fresh_export(
        config, tempfile.mkdtemp(prefix="easymatch-bench-")
    )
    serve = tf.saved_model.load(paths["user"]).signatures["serving_default"]
    row = pq.read_table(config.train_input_path).slice(0, 1).to_pylist()[0]
    request = {
        name: tf.constant([typed_value(row[name], spec.dtype)], spec.dtype)
        for name, spec in serve.structured_input_signature[1].items()
    }
    for _ in range(10):
        serve(**request)
    latencies = []
    for _ in range(requests):
        start = time.perf_counter()
        serve(**request)["user_tower_emb"].numpy()
        latencies.append((time.perf_counter() - start) * 1e3)
    return {
        "export_seconds": export_seconds,
        "user_tower_latency_ms": {
            "p50": float(np.percentile(latencies, 50)),
            "p99": float(np.percentile(latencies, 99)),
        },
    }


def typed_value(value, dtype: tf.DType):
    if dtype == tf.string:
        return "" if value is None else str(value)
    if dtype.is_floating:
        return float("nan") if value is None else float(value)
    return int(value)
