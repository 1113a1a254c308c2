"""The strategy for this process's task (see cluster.py), and `serve`.

Peers are waited for a bounded time (EASYMATCH_PEER_TIMEOUT seconds), then
the missing one is named in one line instead of hanging in a collective.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import subprocess
import sys
import time

import tensorflow as tf

from easymatch.layers import sharded_tables
from easymatch.training.cluster import (
    MULTI_WORKER,
    PARAMETER_SERVER,
    Cluster,
    ClusterError,
    peer_timeout,
    reachable,
    wait_for_peers,
)

logger = logging.getLogger("easymatch")
_RING = tf.distribute.experimental.CommunicationOptions(
    implementation=tf.distribute.experimental.CommunicationImplementation.RING
)


def make_strategy(cluster: Cluster, mode: str) -> tf.distribute.Strategy:
    """The default strategy, MWMS or PSS for the chosen mode."""
    if mode == MULTI_WORKER:
        return multi_worker_strategy(cluster)
    if mode == PARAMETER_SERVER:
        return parameter_server_strategy(cluster)
    return tf.distribute.get_strategy()


def multi_worker_strategy(
    cluster: Cluster,
) -> tf.distribute.MultiWorkerMirroredStrategy:
    """MWMS over TF_CONFIG's chief and workers, ring all-reduce on CPU.

    The constructor starts this task's server, then waits in an all-reduce
    for every peer, unboundedly and holding the GIL (TF's timeout for that
    wait does not fire with RING collectives on CPU; a thread cannot run
    and SIGTERM is not handled). A watchdog process names the missing peer
    and ends this one.
    """
    timeout = peer_timeout()
    watchdog = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "easymatch.training.watchdog",
            str(os.getpid()),
            str(timeout),
        ],
        stdin=subprocess.PIPE,
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=_RING
        )
    finally:
        # End of input tells the watchdog that the wait is over.
        watchdog.stdin.close()
        watchdog.wait()


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def server_config(cluster: Cluster) -> tf.compat.v1.ConfigProto:
    # With fewer inter-op threads than workers + 1, a ps on a 2-core
    # machine deadlocks serving concurrent steps (measured; issue #12).
    return tf.compat.v1.ConfigProto(
        inter_op_parallelism_threads=len(cluster.jobs.get("worker", [])) + 1
    )


def parameter_server_strategy(
    cluster: Cluster,
) -> tf.distribute.experimental.ParameterServerStrategy:
    """PSS for the chief; variables round-robin over the ps tasks, large
    embedding tables sharded over them (layers/sharded_tables.py)."""
    wait_for_peers(cluster, peer_timeout())
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if cluster.has_evaluator:
        # The evaluator task runs no server for the coordinator to join.
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(
                {k: v for k, v in cluster.jobs.items() if k != "evaluator"}
            ),
            task_type=cluster.task_type,
            task_id=cluster.task_index,
            rpc_layer="grpc",
        )
    return tf.distribute.experimental.ParameterServerStrategy(
        resolver, variable_partitioner=sharded_tables.partitioner
    )


def serve(cluster: Cluster, config=None, poll_seconds: float = 0.25) -> None:
    """Runs this ps or worker task's server until the chief ends; a
    worker given the pipeline `config` also produces its share of the
    training input (ps_worker.py).

    The chief's address accepting connections is the chief being alive: a
    task leaves once the chief was seen and stopped answering, or when it
    never appeared within the peer timeout.
    """
    server = tf.distribute.Server(
        tf.train.ClusterSpec(
            {k: v for k, v in cluster.jobs.items() if k != "evaluator"}
        ),
        job_name=cluster.task_type,
        task_index=cluster.task_index,
        protocol="grpc",
        config=server_config(cluster),
        start=True,
    )
    chief = cluster.address("chief", 0)
    logger.info(
        "%s %d serving at %s until the chief (%s) ends",
        cluster.task_type,
        cluster.task_index,
        server.target,
        chief,
    )
    if config is not None and cluster.task_type == "worker":
        from easymatch.training.ps_worker import BatchProducer

        BatchProducer(config, cluster, server.target).start()
    # The launcher ends the servers with SIGTERM once the chief is done.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        _wait_for_the_chief(chief, poll_seconds)
    finally:
        # What a ps holds (its shards) shows in its peak memory.
        logger.info(
            "%s %d: done serving; peak RSS %.1f MB",
            cluster.task_type,
            cluster.task_index,
            peak_rss_mb(),
        )


def _wait_for_the_chief(chief: str, poll_seconds: float) -> None:
    deadline = time.monotonic() + peer_timeout()
    seen = False
    while True:
        alive = reachable(chief)
        seen = seen or alive
        if seen and not alive:
            return
        if not seen and time.monotonic() > deadline:
            raise ClusterError(
                f"TF_CONFIG: chief 0 ({chief}) unreachable after "
                f"{peer_timeout():g} s"
            )
        time.sleep(poll_seconds)
