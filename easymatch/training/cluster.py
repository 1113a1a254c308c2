"""TF_CONFIG → the tf.distribute strategy, as TensorFlow and EasyRec read it.

No cluster → the default strategy (one process); `worker` tasks, with or
without a `chief`, and no `ps` → MultiWorkerMirroredStrategy; a `ps` job →
ParameterServerStrategy, where the chief runs the training loop and the
`ps` and `worker` tasks only serve (`serve`). `train_config.
distribute_strategy` or `--distribute_strategy` may override the choice.
Every node runs the same command; what it does follows from its task.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field

from easymatch.errors import ConfigError, EasyMatchError

logger = logging.getLogger("easymatch")

AUTO = "auto"
SINGLE = "single"
MULTI_WORKER = "multi_worker"
PARAMETER_SERVER = "parameter_server"
MODES = (AUTO, SINGLE, MULTI_WORKER, PARAMETER_SERVER)
JOBS = ("chief", "worker", "ps", "evaluator")
# Seconds a task waits for its peers before it names the missing one.
PEER_TIMEOUT_ENV = "EASYMATCH_PEER_TIMEOUT"
DEFAULT_PEER_TIMEOUT = 300.0


class ClusterError(EasyMatchError):
    """TF_CONFIG is malformed or a peer cannot be reached."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in the cluster that TF_CONFIG describes."""

    jobs: dict[str, list[str]] = field(default_factory=dict)
    task_type: str = ""
    task_index: int = 0

    @property
    def num_workers(self) -> int:
        """Training workers: the workers plus the chief (MWMS counts it)."""
        jobs = self.jobs
        return len(jobs.get("worker", [])) + len(jobs.get("chief", []))

    @property
    def has_evaluator(self) -> bool:
        """An evaluator task evaluates (sidecar_evaluator.py), not the
        training tasks."""
        return self.task_type == "evaluator" or bool(
            self.jobs.get("evaluator")
        )

    @property
    def num_ps(self) -> int:
        return len(self.jobs.get("ps", []))

    @property
    def is_chief(self) -> bool:
        """The task that writes checkpoints, summaries and exports."""
        if not self.jobs:
            return True
        if "chief" in self.jobs:
            return self.task_type == "chief"
        return self.task_type == "worker" and self.task_index == 0

    def address(self, task_type: str, index: int) -> str:
        return self.jobs[task_type][index]

    def peers(self) -> list[tuple[str, int, str]]:
        """(job, index, address) of every other training task."""
        return [
            (job, index, address)
            for job in ("chief", "worker", "ps")
            for index, address in enumerate(self.jobs.get(job, []))
            if (job, index) != (self.task_type, self.task_index)
        ]


def read_tf_config(text: str | None = None) -> Cluster:
    """Parses TF_CONFIG (default: the environment's); ClusterError names
    what is wrong in one line."""
    if text is None:
        text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return Cluster()
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG: not JSON: {error}") from None
    if not isinstance(config, dict):
        raise ClusterError("TF_CONFIG: must be a JSON object")
    jobs = config.get("cluster") or {}
    if not isinstance(jobs, dict):
        raise ClusterError("TF_CONFIG.cluster: must be an object of job lists")
    for job, addresses in jobs.items():
        if job not in JOBS:
            raise ClusterError(
                f"TF_CONFIG.cluster.{job}: unknown job "
                f"(jobs: {', '.join(JOBS)})"
            )
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and _split_address(a) for a in addresses
        ):
            raise ClusterError(
                f"TF_CONFIG.cluster.{job}: must be a list of 'host:port'"
            )
    for job in ("chief", "evaluator"):
        if len(jobs.get(job, [])) > 1:
            raise ClusterError(f"TF_CONFIG.cluster.{job}: at most one {job}")
    if not jobs:
        return Cluster()
    task = config.get("task")
    if not isinstance(task, dict) or "type" not in task:
        raise ClusterError("TF_CONFIG.task: needs 'type' and 'index'")
    task_type, index = task["type"], task.get("index", 0)
    # The evaluator need not be a job of the cluster (TF's rule).
    tasks = jobs.get(task_type, [""] if task_type == "evaluator" else None)
    if tasks is None:
        raise ClusterError(
            f"TF_CONFIG.task.type: {task_type!r} is not a job of the cluster"
        )
    if not isinstance(index, int) or not 0 <= index < len(tasks):
        raise ClusterError(
            f"TF_CONFIG.task.index: {index!r} out of range for job "
            f"{task_type!r} with {len(tasks)} task(s)"
        )
    if "worker" not in jobs and "chief" not in jobs:
        raise ClusterError("TF_CONFIG.cluster: needs a 'worker' or 'chief'")
    if "ps" in jobs and "chief" not in jobs:
        raise ClusterError(
            "TF_CONFIG.cluster: a cluster with 'ps' needs a 'chief'"
        )
    return Cluster(
        jobs={k: list(v) for k, v in jobs.items()},
        task_type=task_type,
        task_index=index,
    )


def _split_address(address: str) -> tuple[str, int] | None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def choose_mode(cluster: Cluster, override: str = "") -> str:
    """The strategy kind: TF_CONFIG's unless `override` names one."""
    override = override or AUTO
    if override not in MODES:
        raise ConfigError(
            f"train_config.distribute_strategy: {override!r} is not one of "
            f"{', '.join(MODES)}"
        )
    if override != AUTO:
        if override != SINGLE and not cluster.jobs:
            raise ConfigError(
                f"train_config.distribute_strategy: {override} needs a "
                "cluster in TF_CONFIG"
            )
        if override == PARAMETER_SERVER and not cluster.num_ps:
            raise ConfigError(
                "train_config.distribute_strategy: parameter_server needs "
                "a 'ps' job in TF_CONFIG"
            )
        return override
    if not cluster.jobs:
        return SINGLE
    return PARAMETER_SERVER if cluster.num_ps else MULTI_WORKER


def peer_timeout() -> float:
    value = os.environ.get(PEER_TIMEOUT_ENV, "")
    try:
        return float(value) if value else DEFAULT_PEER_TIMEOUT
    except ValueError:
        raise ClusterError(
            f"{PEER_TIMEOUT_ENV}: not a number: {value!r}"
        ) from None


def reachable(address: str, timeout: float = 1.0) -> bool:
    host, port = _split_address(address) or ("", 0)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def unreachable_peer(cluster: Cluster) -> str | None:
    """'job index (address)' of the first peer that does not accept a
    connection now, or None."""
    for job, index, address in cluster.peers():
        if not reachable(address):
            return f"{job} {index} ({address})"
    return None


def wait_for_peers(cluster: Cluster, timeout: float) -> None:
    """Returns once every peer accepts connections; ClusterError after
    `timeout` seconds naming one that does not."""
    deadline = time.monotonic() + timeout
    while True:
        missing = unreachable_peer(cluster)
        if missing is None:
            return
        if time.monotonic() > deadline:
            raise ClusterError(
                f"TF_CONFIG: {missing} unreachable after {timeout:g} s"
            )
        time.sleep(0.5)
