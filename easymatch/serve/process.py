"""`python -m easymatch.serve` as a child process on free loopback ports:
started, waited for, asked over REST, and stopped by its PID (the bench
and the tests use it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.client import HTTPConnection

START_SECONDS = 300.0  # TF import and loading on a busy 2-core machine


class ServeProcess:
    def __init__(self, base: str, *flags: str, cwd: str | None = None):
        command = [sys.executable, "-m", "easymatch.serve"]
        command += ["--model_base_path", str(base), "--port", "0"]
        command += ["--rest_api_port", "0", *flags]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env=env,
        )
        self.stderr: list[str] = []
        threading.Thread(target=self._collect, daemon=True).start()
        # "easymatch.serve: gRPC on H:P, REST on H:P, models ..."
        parts = self._first_line().replace(",", " ").split()
        self.grpc_port = int(parts[3].rsplit(":", 1)[1])
        self.rest_port = int(parts[6].rsplit(":", 1)[1])

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
            raise RuntimeError("easymatch.serve did not start: " + self.log())
        return result[0]

    def log(self) -> str:
        return "".join(self.stderr[-20:])

    def rest(self, method: str, path: str, body=None) -> tuple[int, dict]:
        """(HTTP status, parsed JSON) of one request."""
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
            if self.process.poll() is not None:
                raise RuntimeError("easymatch.serve exited: " + self.log())
            _, body = self.rest("GET", f"/v1/models/{model}")
            states = {
                s["version"]: s["state"]
                for s in body.get("model_version_status", [])
            }
            if states.get(str(version)) == "AVAILABLE":
                return
            time.sleep(0.2)
        raise RuntimeError(f"version {version} not available: {self.log()}")

    def terminate(self, timeout: float = 120) -> int:
        """SIGTERM; the exit status (killed if it does not exit)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
