"""Helpers of the easymatch.serve tests: an export, a server process on
free loopback ports, REST and gRPC clients, and TF-only references."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.client import HTTPConnection
from pathlib import Path

import grpc
import numpy as np
import pyarrow.parquet as pq
from conftest import DEMO_CONFIG, ROOT, demo_edits
from tensorflow_serving.apis import (
    model_service_pb2_grpc,
    prediction_service_pb2_grpc,
)

from easymatch.config import load_pipeline_config
from easymatch.export.export_model import export
from easymatch.features.builder import build_feature_set
from easymatch.models.builder import build_model
from easymatch.serve.servable import signature_defs
from easymatch.training import checkpoints

ROWS = 8
START_SECONDS = 300  # TF import and loading on a busy 2-core machine
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
    model = build_model(config, build_feature_set(config))
    checkpoint = checkpoints.make_checkpoint(
        model, with_optimizers=False
    ).write(str(root / "model" / "model.ckpt-0"))
    export_dir = root / "x"
    export(
        config,
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


class Server:
    """`python -m easymatch.serve` on free 127.0.0.1 ports."""

    def __init__(self, base: Path, *flags: str) -> None:
        command = [sys.executable, "-m", "easymatch.serve"]
        command += ["--model_base_path", str(base), "--port", "0"]
        command += ["--rest_api_port", "0", *flags]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()
        line = self._first_line()
        # "easymatch.serve: gRPC on H:P, REST on H:P, models ..."
        parts = line.replace(",", " ").split()
        self.grpc_port = int(parts[3].rsplit(":", 1)[1])
        self.rest_port = int(parts[6].rsplit(":", 1)[1])
        channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")
        self.channel = channel
        self.predict = prediction_service_pb2_grpc.PredictionServiceStub(
            channel
        )
        self.models = model_service_pb2_grpc.ModelServiceStub(channel)

    def _collect(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line)

    def _first_line(self) -> str:
        result: list[str] = []
        reader = threading.Thread(
            target=lambda: result.append(self.process.stdout.readline()),
            daemon=True,
        )
        reader.start()
        reader.join(START_SECONDS)
        if not result or not result[0]:
            self.kill()
            raise AssertionError("server did not start: " + self.log())
        return result[0]

    def log(self) -> str:
        return "".join(self.stderr[-20:])

    def rest(self, method: str, path: str, body=None) -> tuple[int, dict]:
        connection = HTTPConnection("127.0.0.1", self.rest_port, timeout=120)
        try:
            data = body if isinstance(body, bytes | None) else json.dumps(body)
            connection.request(method, path, body=data)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def wait_for(self, version: int, model: str = "user") -> None:
        """Until `version` of `model` is AVAILABLE (bounded)."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log()
            status, body = self.rest("GET", f"/v1/models/{model}")
            states = {
                s["version"]: s["state"]
                for s in body.get("model_version_status", [])
            }
            if states.get(str(version)) == "AVAILABLE":
                return
            time.sleep(0.2)
        raise AssertionError(f"version {version} not available: {self.log()}")

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.channel.close()
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
