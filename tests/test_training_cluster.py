"""TF_CONFIG → cluster and strategy mode; one-line errors for bad configs
and unreachable peers (real sockets and a real train_eval process)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import DEMO_CONFIG, ROOT, demo_edits

from easymatch.errors import ConfigError
from easymatch.launch import free_port
from easymatch.training.cluster import (
    MULTI_WORKER,
    PARAMETER_SERVER,
    SINGLE,
    ClusterError,
    choose_mode,
    read_tf_config,
    wait_for_peers,
)


def _config(cluster: dict, task_type: str = "worker", index: int = 0) -> str:
    return json.dumps(
        {"cluster": cluster, "task": {"type": task_type, "index": index}}
    )


WORKERS = {"worker": ["127.0.0.1:1001", "127.0.0.1:1002"]}
PS = {
    "chief": ["127.0.0.1:1000"],
    "worker": ["127.0.0.1:1001", "127.0.0.1:1002"],
    "ps": ["127.0.0.1:1003", "127.0.0.1:1004"],
}


def test_modes_from_tf_config() -> None:
    assert choose_mode(read_tf_config("")) == SINGLE
    workers = read_tf_config(_config(WORKERS, "worker", 1))
    assert choose_mode(workers) == MULTI_WORKER
    assert (workers.num_workers, workers.is_chief) == (2, False)
    assert read_tf_config(_config(WORKERS, "worker", 0)).is_chief
    ps = read_tf_config(_config(PS, "ps", 1))
    assert choose_mode(ps) == PARAMETER_SERVER
    assert (ps.num_ps, ps.num_workers, ps.is_chief) == (2, 3, False)
    assert read_tf_config(_config(PS, "chief")).is_chief
    # The override wins, but only for a cluster that has what it needs.
    assert choose_mode(workers, "single") == SINGLE
    with pytest.raises(ConfigError, match="parameter_server needs a 'ps'"):
        choose_mode(workers, "parameter_server")
    with pytest.raises(ConfigError, match="'ring' is not one of"):
        choose_mode(workers, "ring")


@pytest.mark.parametrize(
    "text, message",
    [
        ("{cluster", "TF_CONFIG: not JSON"),
        ('["a"]', "must be a JSON object"),
        (_config({"boss": ["h:1"]}), "TF_CONFIG.cluster.boss: unknown job"),
        (_config({"worker": ["nohost"]}), "must be a list of 'host:port'"),
        (_config(WORKERS, "worker", 2), "index: 2 out of range for job"),
        (_config(WORKERS, "ps", 0), "'ps' is not a job of the cluster"),
        (json.dumps({"cluster": WORKERS}), "TF_CONFIG.task: needs 'type'"),
        (
            _config({"worker": ["h:1"], "ps": ["h:2"]}),
            "a cluster with 'ps' needs a 'chief'",
        ),
    ],
)
def test_malformed_tf_config_names_the_field(text: str, message: str) -> None:
    with pytest.raises(ClusterError, match=message):
        read_tf_config(text)


def test_wait_for_peers_names_the_missing_one() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        up = f"127.0.0.1:{listening.getsockname()[1]}"
        down = f"127.0.0.1:{free_port()}"
        cluster = read_tf_config(
            _config({"worker": ["127.0.0.1:1", up]}, "worker", 0)
        )
        wait_for_peers(cluster, timeout=1.0)
        cluster = read_tf_config(
            _config({"worker": ["127.0.0.1:1", up, down]}, "worker", 0)
        )
        start = time.monotonic()
        with pytest.raises(ClusterError, match=rf"worker 2 \({down}\)"):
            wait_for_peers(cluster, timeout=1.0)
        assert time.monotonic() - start < 30


def _train_eval(
    tmp_path, taobao_data, tf_config: str, timeout: float = 600, **env: str
):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "easymatch.train_eval",
            "--pipeline_config_path",
            str(DEMO_CONFIG),
            "--edit_config_json",
            demo_edits(taobao_data, tmp_path / "model"),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, TF_CONFIG=tf_config, **env),
    )


def test_bad_tf_config_is_one_line(taobao_data, tmp_path) -> None:
    result = _train_eval(tmp_path, taobao_data, _config(WORKERS, "worker", 5))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "easymatch: error: TF_CONFIG.task.index: 5 out of range for job "
        "'worker' with 2 task(s)"
    )
    assert "Traceback" not in result.stderr


def test_parameter_server_chief_names_a_missing_ps(taobao_data, tmp_path):
    jobs = {
        job: [f"127.0.0.1:{free_port()}" for _ in range(count)]
        for job, count in (("chief", 1), ("worker", 1), ("ps", 1))
    }
    result = _train_eval(
        tmp_path,
        taobao_data,
        _config(jobs, "chief", 0),
        EASYMATCH_PEER_TIMEOUT="2",
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"easymatch: error: TF_CONFIG: worker 0 ({jobs['worker'][0]}) "
        "unreachable after 2 s"
    )


def test_evaluator_task_in_tf_config() -> None:
    # TF's rule: the evaluator may be left out of the cluster it watches.
    evaluator = read_tf_config(_config(WORKERS, "evaluator", 0))
    assert evaluator.has_evaluator and not evaluator.is_chief
    assert evaluator.num_workers == 2
    listed = dict(WORKERS, evaluator=["127.0.0.1:1005"])
    chief = read_tf_config(_config(listed, "worker", 0))
    # The training tasks see it and leave evaluation to it.
    assert chief.has_evaluator and chief.is_chief
    assert chief.num_workers == 2
    assert all(job != "evaluator" for job, _, _ in chief.peers())
    assert not read_tf_config(_config(WORKERS, "worker", 0)).has_evaluator
    with pytest.raises(ClusterError, match="index: 1 out of range"):
        read_tf_config(_config(WORKERS, "evaluator", 1))
    two = dict(WORKERS, evaluator=["h:1", "h:2"])
    with pytest.raises(ClusterError, match="at most one evaluator"):
        read_tf_config(_config(two, "worker", 0))


def test_evaluator_without_a_chief_stops_in_one_line(taobao_data, tmp_path):
    jobs = {"worker": [f"127.0.0.1:{free_port()}"]}
    result = _train_eval(
        tmp_path,
        taobao_data,
        _config(jobs, "evaluator", 0),
        timeout=300,
        EASYMATCH_PEER_TIMEOUT="2",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"easymatch: error: TF_CONFIG: chief ({jobs['worker'][0]}) "
        "unreachable after 2 s"
    )


@pytest.mark.slow
def test_missing_worker_is_named_after_the_timeout(taobao_data, tmp_path):
    peers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    result = _train_eval(
        tmp_path,
        taobao_data,
        _config({"worker": peers}, "worker", 0),
        EASYMATCH_PEER_TIMEOUT="5",
    )
    assert result.returncode != 0
    assert (
        f"easymatch: error: TF_CONFIG: worker 1 ({peers[1]}) unreachable "
        "after 5 s" in result.stderr
    )
