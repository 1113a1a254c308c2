"""Helpers of the easymatch.serve tests: an export, a server process on
free loopback ports, REST and gRPC clients, and TF-only references."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import grpc
import numpy as np
import pyarrow.parquet as pq
from conftest import DEMO_CONFIG, ROOT, demo_edits
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from easymatch import checkpoint as checkpoints
from easymatch.config import load_pipeline_config
from easymatch.export.export_model import export
from easymatch.models.builder import build_model
from easymatch.run_context import RunContext
from easymatch.serve.process import ServeProcess
from easymatch.serve.servable import signature_defs

ROWS = 8
NUMPY = {1: np.float32, 9: np.int64, 7: object}  # DataType → numpy

# Runs the towers with nothing but tensorflow imported.
TF_ONLY = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    root, out = sys.argv[1], sys.argv[2]
    results = {}
    for side in ("user", "item"):
        model = tf.saved_model.load(f"{root}/{side}")
        data = np.load(f"{out}/{side}_rows.npz", allow_pickle=True)
        serving = model.signatures["serving_default"]
        specs = serving.structured_input_signature[1]
        inputs = {k: tf.constant(data[k], specs[k].dtype) for k in specs}
        results[side] = serving(**inputs)[f"{side}_tower_emb"].numpy()
        if side == "user":  # the export's stock-op retrieval SavedModel
            top = tf.saved_model.load(f"{root}/retrieval").signatures[
                "serving_default"
            ](**inputs)
            results["retrieval_ids"] = top["item_ids"].numpy()
            results["retrieval_scores"] = top["scores"].numpy()
    assert not [m for m in sys.modules if m.startswith("easymatch")]
    np.savez(f"{out}/reference.npz", **results)
    """
)


def signature_rows(export_dir: Path, side: str, table) -> dict:
    """The first ROWS rows of `table` as the tower's serving inputs."""
    definition = signature_defs(str(export_dir / side))["serving_default"]
    rows = {}
    for name, info in definition.inputs.items():
        values = table.column(name).to_pylist()[:ROWS]
        if NUMPY[info.dtype] is object:
            values = [str(v).encode() for v in values]
        rows[name] = np.array(values, dtype=NUMPY[info.dtype])
    return rows


def make_served_export(taobao_data: Path, root: Path) -> dict:
    """An export (random weights) with item index, rows of both towers
    and their embeddings computed by a TF-only process."""
    config = load_pipeline_config(
        str(DEMO_CONFIG), demo_edits(taobao_data, root / "model")
    )
    run = RunContext(config)
    model = build_model(run.specs.model)
    checkpoint = checkpoints.make_checkpoint(
        model, with_optimizers=False
    ).write(str(root / "model" / "model.ckpt-0"))
    export_dir = root / "x"
    export(
        run,
        checkpoint,
        str(export_dir),
        item_input_path=str(taobao_data / "item.parquet"),
    )
    table = pq.read_table(taobao_data / "eval.parquet")
    rows = {}
    for side in ("user", "item"):
        rows[side] = signature_rows(export_dir, side, table)
        np.savez(root / f"{side}_rows.npz", **rows[side])
    subprocess.run(
        [sys.executable, "-c", TF_ONLY, str(export_dir), str(root)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    reference = dict(np.load(root / "reference.npz"))
    return {"dir": export_dir, "rows": rows, "reference": reference}


class Server(ServeProcess):
    """The server process with TF Serving's gRPC stubs connected."""

    def __init__(self, base: Path, *flags: str) -> None:
        super().__init__(str(base), *flags, cwd=str(ROOT))
        channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.channel = channel
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(
            channel
        )
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)

    def terminate(self, timeout: float = 120) -> int:
        try:
            return super().terminate(timeout)
        finally:
            self.channel.close()
