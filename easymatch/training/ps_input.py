"""Per-worker training input under parameter-server training.

Each worker task reads its own share of the training rows (data/shards.py)
with the same pipeline as one process (pyarrow reader, sampler stream k,
feature transforms), in its own Python process (ps_worker.py), and puts
the batches into a FIFO queue on its own device. The chief's per-worker
datasets (`ClusterCoordinator.create_per_worker_dataset`) take from that
queue, so a step scheduled on worker k trains on worker k's next batch
and no batch crosses the network. A per-worker dataset cannot run the
pipeline itself: TF runs its Python calls in the chief's process
(tests/test_training_ps_steps.py), which would read all input there.

The queue is found by name in the worker device's resource manager: the
worker's own session and the chief's remote functions share it. The
chief tells each worker where to start through a second queue: which of
its batches were already trained on (the `positions` variable, one count
per worker, kept in checkpoints and advanced by every step) and the seed
of its streams. A worker that restarts gets the current counts when the
coordinator rebuilds its dataset, so it regenerates the batch its lost
step had taken.

Workers repeat their shares without end, as TF advises for PSS: the
chief schedules the run's number of steps (train_config.num_steps, or
num_epochs × the input's batches), whichever worker takes them.
"""

from __future__ import annotations

import logging
import re

import numpy as np
import tensorflow as tf

from easymatch.data.dataset import make_dataset
from easymatch.errors import DataError, unescape_assert_text
from easymatch.run_context import RunContext

logger = logging.getLogger("easymatch")

BATCH_QUEUE = "easymatch_ps_input_batches"
START_QUEUE = "easymatch_ps_input_start"
# Batches a worker prepares ahead of its steps.
BATCH_CAPACITY = 4
# Start messages: one per (re)built dataset; the producer reads the first.
START_CAPACITY = 16
# A batch's tag: its worker, its number in the worker's stream, and an
# error text that is empty unless the worker's input failed.
TAG_DTYPES = [tf.int64, tf.int64, tf.string]

_FAILED = re.compile(r"<easymatch-worker-input (data|internal): (.*?) >", re.S)


def input_dataset(
    run: RunContext, shard: tuple[int, int], first_batch: int
) -> tf.data.Dataset:
    """Worker `shard[0]`'s training batches from its `first_batch`: its
    rows, its sampler stream of the run seed, repeated without end."""
    negatives = run.negatives(training=True)
    return make_dataset(
        run.reader(run.config.train_input_path, training=True, shard=shard),
        run.transform,
        num_epochs=None,
        skip_batches=first_batch,
        negatives=negatives.for_stream(shard[0]) if negatives else None,
        first_step=first_batch,
    )


class BatchLayout:
    """A batch as the flat list of tensors a worker's queue holds."""

    def __init__(self, element_spec) -> None:
        self.spec = element_spec
        self.components = tf.nest.flatten(element_spec, expand_composites=True)
        self.dtypes = TAG_DTYPES + [c.dtype for c in self.components]

    @classmethod
    def of(cls, run: RunContext) -> BatchLayout:
        # The structure only: building the dataset reads no batch.
        return cls(input_dataset(run, (0, 1), 0).element_spec)

    def flatten(self, worker: int, number: int, batch) -> list[np.ndarray]:
        values = tf.nest.flatten(batch, expand_composites=True)
        return [np.int64(worker), np.int64(number), b""] + [
            v.numpy() for v in values
        ]

    def unpack(self, flat: list[tf.Tensor]):
        """((worker, number), batch); raises the worker's failure."""
        worker, number, error, *values = flat
        failed = tf.debugging.Assert(tf.equal(error, ""), [error])
        with tf.control_dependencies([failed]):
            values = [
                tf.ensure_shape(v, c.shape)
                for v, c in zip(values, self.components, strict=True)
            ]
        batch = tf.nest.pack_sequence_as(
            self.spec, values, expand_composites=True
        )
        return (worker, number), batch


def failure_element(
    dtypes: list[tf.DType], worker: int, kind: str, text: str
) -> list[np.ndarray]:
    """A queue element that fails the step taking it with `text` (its
    batch is never read: the check comes first, see `unpack`)."""
    message = f"<easymatch-worker-input {kind}: worker {worker}: {text} >"
    filler = [
        np.array(b"" if d == tf.string else 0, d.as_numpy_dtype)
        for d in dtypes[len(TAG_DTYPES) :]
    ]
    return [np.int64(worker), np.int64(-1), message.encode()] + filler


def start_message(
    positions: tf.Tensor, seed: int, dtypes: list[tf.DType]
) -> tf.Tensor:
    """What a worker needs before its first batch: where each worker
    stands, the run seed and the chief's queue layout (dtype enums)."""
    layout = [d.as_datatype_enum for d in dtypes]
    return tf.concat([positions, tf.constant([seed] + layout, tf.int64)], 0)


def read_start_message(message, worker: int, num_workers: int):
    """(first batch, seed, queue dtypes) of `worker` from the message."""
    dtypes = [tf.as_dtype(int(e)) for e in message[num_workers + 1 :]]
    return int(message[worker]), int(message[num_workers]), dtypes


def batch_queue(dtypes) -> tf.Tensor:
    return tf.raw_ops.FIFOQueueV2(
        component_types=dtypes,
        shapes=[],
        capacity=BATCH_CAPACITY,
        shared_name=BATCH_QUEUE,
    )


def start_queue() -> tf.Tensor:
    return tf.raw_ops.FIFOQueueV2(
        component_types=[tf.int64],
        shapes=[],
        capacity=START_CAPACITY,
        shared_name=START_QUEUE,
    )


class WorkerInput:
    """The chief's side: per-worker datasets over the workers' queues and
    the count of each worker's batches trained on."""

    def __init__(
        self,
        run: RunContext,
        strategy: tf.distribute.Strategy,
        num_workers: int,
    ) -> None:
        self.layout = BatchLayout.of(run)
        self.num_workers = num_workers
        self.seed = run.seed
        with strategy.scope():
            # -1: not restored from a checkpoint of as many workers.
            self.positions = tf.Variable(
                tf.fill([num_workers], tf.constant(-1, tf.int64)),
                trainable=False,
                name="worker_batches",
            )

    def checkpoint_key(self) -> str:
        # Counts of another number of workers are of other shards.
        return f"worker_batches_of_{self.num_workers}"

    def start_at(self, step: int) -> None:
        """Without restored counts, each worker starts after its share of
        `step` batches: its place if workers ran at one pace."""
        if (self.positions.numpy() < 0).any():
            if step:
                logger.warning(
                    "no batch counts of %d workers in the checkpoint: "
                    "each worker skips %d batches of its share",
                    self.num_workers,
                    step // self.num_workers,
                )
            self.positions.assign(
                tf.fill([self.num_workers], tf.constant(step, tf.int64))
                // self.num_workers
            )

    def iterator(self, coordinator):
        positions, seed, layout = self.positions, self.seed, self.layout

        def dataset_fn():
            start = start_message(positions.read_value(), seed, layout.dtypes)
            tf.raw_ops.QueueEnqueueV2(handle=start_queue(), components=[start])
            handle = batch_queue(layout.dtypes)
            return (
                tf.data.Dataset.from_tensors(0)
                .repeat()
                .map(
                    lambda _: layout.unpack(
                        tf.raw_ops.QueueDequeueV2(
                            handle=handle, component_types=layout.dtypes
                        )
                    )
                )
            )

        return iter(coordinator.create_per_worker_dataset(dataset_fn))

    def record(self, tag) -> None:
        """In a step: the batch `tag` of its worker was trained on."""
        worker, number = tag
        self.positions.scatter_update(
            tf.IndexedSlices(tf.reshape(number + 1, [1]), [worker])
        )


def worker_failure(error: tf.errors.OpError) -> Exception | None:
    """The failure a worker's input put in its queue, or None."""
    found = _FAILED.search(str(error))
    if found is None:
        return None
    kind, text = found.group(1), unescape_assert_text(found.group(2))
    if kind == "data":
        return DataError(text)
    return RuntimeError(f"input pipeline failed on {text}")
