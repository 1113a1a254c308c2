"""A parameter-server worker's input: the producer side of ps_input.py.

It runs in the worker task's process, in a thread beside the server that
runs the chief's steps, and talks to that server through a TF1 session:
ops placed on the worker's own device find the chief's queues by name.
"""

from __future__ import annotations

import logging
import threading

import tensorflow as tf

from easymatch.errors import DataError, EasyMatchError, data_error_from_tf
from easymatch.run_context import RunContext
from easymatch.training.cluster import Cluster
from easymatch.training.ps_input import (
    BatchLayout,
    batch_queue,
    failure_element,
    input_dataset,
    read_start_message,
    start_queue,
)

logger = logging.getLogger("easymatch")


class BatchProducer:
    """Worker `cluster.task_index`'s batches, into its queue, from where
    the chief's start message says."""

    def __init__(self, config, cluster: Cluster, target: str) -> None:
        self.config = config
        self.worker = cluster.task_index
        self.num_workers = len(cluster.jobs["worker"])
        self.target = target

    def start(self) -> threading.Thread:
        # A daemon: the process ends with its server, when the chief does.
        thread = threading.Thread(
            target=self.run, name="easymatch-input", daemon=True
        )
        thread.start()
        return thread

    def run(self) -> None:
        graph = tf.Graph()
        device = f"/job:worker/replica:0/task:{self.worker}/device:CPU:0"
        with graph.as_default(), tf.device(device):
            (start,) = tf.raw_ops.QueueDequeueV2(
                handle=start_queue(), component_types=[tf.int64]
            )
        # Not `with session`: that would make its graph the default one,
        # and the input pipeline runs eagerly. The device filter keeps the
        # session on this task: unfiltered, its master would open sessions
        # on every task of the cluster, beside the chief's (seen failing
        # the chief's remote calls).
        session = tf.compat.v1.Session(
            self.target,
            graph=graph,
            config=tf.compat.v1.ConfigProto(device_filters=[device]),
        )
        first, seed, dtypes = read_start_message(
            session.run(start), self.worker, self.num_workers
        )
        with graph.as_default(), tf.device(device):
            values = [tf.compat.v1.placeholder(d) for d in dtypes]
            enqueue = tf.raw_ops.QueueEnqueueV2(
                handle=batch_queue(dtypes), components=values
            )

        def put(flat: list) -> None:
            session.run(enqueue, dict(zip(values, flat, strict=True)))

        logger.info(
            "worker %d: input from batch %d of shard %d/%d (seed %d)",
            self.worker,
            first,
            self.worker,
            self.num_workers,
            seed,
        )
        try:
            self._produce(put, first, seed, dtypes)
        except Exception as error:  # noqa: BLE001 - sent to the chief
            kind, text = self._describe(error)
            put(failure_element(dtypes, self.worker, kind, text))

    def _produce(self, put, first: int, seed: int, dtypes: list) -> None:
        run = RunContext(self.config, seed=seed)
        shard = (self.worker, self.num_workers)
        dataset = input_dataset(run, shard, first)
        layout = BatchLayout(dataset.element_spec)
        if layout.dtypes != dtypes:
            raise DataError(
                f"{self.config.train_input_path}: this worker's input has "
                f"columns of other types than the chief's: {layout.spec}"
            )
        for number, batch in enumerate(dataset, first):
            put(layout.flatten(self.worker, number, batch))

    def _describe(self, error: Exception) -> tuple[str, str]:
        """("data", its line) for bad input, else ("internal", a summary
        with the traceback in this worker's log)."""
        if isinstance(error, EasyMatchError):
            return "data", str(error)
        found = data_error_from_tf(error, self.config.train_input_path)
        if found is not None:
            return "data", str(found)
        logger.exception("worker %d: input pipeline failed", self.worker)
        first = (str(error).strip().splitlines() or [""])[0][:300]
        return "internal", f"{type(error).__name__}: {first}"
