"""easymatch.serve picks up versions as TF Serving does, and drains on
SIGTERM (a real server process on a versioned base directory)."""

from __future__ import annotations

import os
import shutil
import threading
import time
import weakref

import grpc
import pytest
from conftest import run_cli
from serving import Server
from test_serve_api import json_rows, request

from easymatch.serve.registry import Registry, State

pytestmark = pytest.mark.slow
POLL = 0.2
BATCH_WAIT_MICROS = 1_500_000  # requests sit in the batcher: drain test


def wait_until(check, what: str, server: Server, seconds: float = 300):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}: {server.log()}")


def states(server: Server) -> dict[str, tuple[str, str]]:
    _, body = server.rest("GET", "/v1/models/retrieval")
    return {
        s["version"]: (s["state"], s["status"]["error_message"])
        for s in body["model_version_status"]
    }


def served_version(server: Server, rows: dict) -> int:
    response = server.predict.Predict(request("retrieval", rows), timeout=60)
    return response.model_spec.version.value


def test_versions_switch_and_sigterm_drains(served_export, tmp_path):
    source = served_export["dir"]
    rows = {k: v[:1] for k, v in served_export["rows"]["user"].items()}
    base = tmp_path / "best"
    shutil.copytree(source, base / "1")
    # The exporter's per-tower views sit beside the versions.
    (base / "user").mkdir()
    os.symlink("../1/user", base / "user" / "1")
    server = Server(
        base,
        "--file_system_poll_wait_seconds",
        str(POLL),
        "--batch_timeout_micros",
        str(BATCH_WAIT_MICROS),
    )
    try:
        server.wait_for(1, "retrieval")
        # Version 2 is being copied: the user tower only, so far.
        shutil.copytree(source / "user", base / "2" / "user")
        # Version 3 looks complete but its item tower has no variables.
        shutil.copytree(source / "user", base / "3" / "user")
        (base / "3" / "item").mkdir()
        shutil.copy(source / "item" / "saved_model.pb", base / "3" / "item")
        failed = wait_until(
            lambda: (
                states(server).get("3", ("LOADING",))[0] != "LOADING"
                and states(server)["3"]
            ),
            "version 3 to fail",
            server,
        )
        assert failed[0] == "END" and "item" in failed[1]
        assert "2" not in states(server)
        assert states(server)["1"] == ("AVAILABLE", "")
        assert served_version(server, rows) == 1
        # Version 2 completes: loaded, switched to, version 1 unloaded.
        for name in ("item", "item_index"):
            shutil.copytree(source / name, base / "2" / name)
        server.wait_for(2, "retrieval")
        assert served_version(server, rows) == 2
        wait_until(lambda: states(server)["1"] == ("END", ""), "unload", server)
        with pytest.raises(grpc.RpcError) as caught:
            server.predict.Predict(
                request("retrieval", rows, version=1), timeout=60
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "Specific(retrieval, 1)" in caught.value.details()
        status, body = server.rest(
            "POST", "/v1/models/user/versions/1:predict", {"instances": []}
        )
        assert status == 404, body
        # SIGTERM while two requests wait in the batcher: both answered.
        answers: list = []
        waiting = [
            threading.Thread(
                target=lambda: answers.append(served_version(server, rows))
            ),
            threading.Thread(
                target=lambda: answers.append(
                    server.rest(
                        "POST",
                        "/v1/models/retrieval:predict",
                        {"instances": json_rows(rows)},
                    )[0]
                )
            ),
        ]
        for thread in waiting:
            thread.start()
        time.sleep(BATCH_WAIT_MICROS / 4e6)
        assert server.terminate() == 0, server.log()
        for thread in waiting:
            thread.join(60)
        assert sorted(answers) == [2, 200]  # gRPC's version, REST's status
    finally:
        server.kill()


def test_cli_rejects_bad_flags_in_one_line(tmp_path):
    result = run_cli(
        "easymatch.serve", "--model_base_path", str(tmp_path / "nope")
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"easymatch: error: --model_base_path {tmp_path / 'nope'}: "
        "not a directory"
    )
    result = run_cli(
        "easymatch.serve", "--model_base_path", str(tmp_path), "--top_k", "0"
    )
    assert result.returncode == 2
    assert "--top_k must be > 0" in result.stderr


def test_the_old_version_is_released(served_export, tmp_path):
    """In process: after the switch nothing holds the old version."""
    source = served_export["dir"]
    shutil.copytree(source, tmp_path / "1")
    registry = Registry(str(tmp_path), top_k=10)
    registry.poll()  # first sight
    registry.poll()  # settled: loaded
    assert registry.current.version == 1
    old = weakref.ref(registry.current)
    shutil.copytree(source, tmp_path / "2")
    registry.poll()
    assert registry.current.version == 1
    registry.poll()
    assert registry.current.version == 2
    assert old() is None
    assert registry.states[1] == (State.END, "")
    assert registry.states[2] == (State.AVAILABLE, "")
