"""Row-sparse updates of a table sharded over two ps tasks (an in-process
cluster of 2 ps + 2 workers in a subprocess, the chief driving it through
ClusterCoordinator) equal the one-process update; its checkpoint restores
into one unsharded variable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from easymatch.training.sparse_optimizers import RowSparseAdagrad

pytestmark = pytest.mark.slow

ROWS, DIM = 10, 4
IDS = [1, 7, 7, 3, 8]

SCRIPT = textwrap.dedent(
    """
    import json, socket, sys
    import numpy as np
    import tensorflow as tf
    from easymatch.training.sharded_sparse import ShardedRowSparse
    from easymatch.training.sparse_optimizers import RowSparseAdagrad

    def port():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    jobs = {
        job: [f"127.0.0.1:{port()}" for _ in range(count)]
        for job, count in (("chief", 1), ("worker", 2), ("ps", 2))
    }
    spec = tf.train.ClusterSpec(jobs)
    # workers + 1 inter-op threads, or a 2-core machine deadlocks.
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=3)
    servers = [
        tf.distribute.Server(
            spec, job_name=job, task_index=i, config=config, start=True
        )
        for job in ("worker", "ps")
        for i in range(2)
    ]
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        tf.distribute.cluster_resolver.SimpleClusterResolver(
            spec, rpc_layer="grpc"
        ),
        variable_partitioner=lambda shape, dtype: [2, 1],
    )
    rows, dim, ids = json.loads(sys.argv[1])
    initial = np.arange(rows * dim, dtype=np.float32).reshape(rows, dim)
    with strategy.scope():
        table = tf.Variable(initial / 10.0, name="table")
        optimizer = RowSparseAdagrad(learning_rate=0.1)
        sharded = ShardedRowSparse(optimizer, [table])
    coordinator = (
        tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
    )

    @tf.function
    def step():
        shards = sharded.shard_variables()
        with tf.GradientTape() as tape:
            rows = tf.nn.embedding_lookup(table, tf.constant(ids))
            loss = tf.reduce_sum(rows * rows)
        sharded.apply(tape.gradient(loss, shards), 0.1)
        return loss

    for _ in range(2):
        # One step at a time: steps in flight together would read rows
        # the other is updating (asynchronous training).
        coordinator.schedule(step)
        coordinator.join()
    print(json.dumps({
        "shards": [
            [v.shape.as_list(), v.device] for v in table.variables
        ],
        "table": tf.concat(
            [v.read_value() for v in table.variables], 0
        ).numpy().tolist(),
        "checkpoint": tf.train.Checkpoint(table=table).save(sys.argv[2]),
    }))
    """
)


def _one_process() -> np.ndarray:
    initial = np.arange(ROWS * DIM, dtype=np.float32).reshape(ROWS, DIM)
    table = keras.Variable(initial / 10.0)
    optimizer = RowSparseAdagrad(learning_rate=0.1)
    optimizer.build([table])
    for _ in range(2):
        with tf.GradientTape() as tape:
            rows = tf.gather(table.value, IDS)
            loss = tf.reduce_sum(rows * rows)
        optimizer.apply(tape.gradient(loss, [table.value]), [table])
    return table.numpy()


def test_sharded_update_and_checkpoint(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            json.dumps([ROWS, DIM, IDS]),
            str(tmp_path / "ckpt"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # Two shards of half the rows, one on each ps: no task holds the table.
    assert [shape for shape, _ in out["shards"]] == [[5, 4], [5, 4]]
    assert [device.split("/")[1:3] for _, device in out["shards"]] == [
        ["job:ps", "replica:0"],
        ["job:ps", "replica:0"],
    ]
    assert {device.split("/")[3] for _, device in out["shards"]} == {
        "task:0",
        "task:1",
    }
    table = np.array(out["table"], dtype=np.float32)
    np.testing.assert_allclose(table, _one_process(), rtol=1e-6)
    # The sharded checkpoint restores into one unsharded variable.
    restored = tf.Variable(tf.zeros([ROWS, DIM]))
    tf.train.Checkpoint(table=restored).restore(
        out["checkpoint"]
    ).assert_existing_objects_matched()
    np.testing.assert_array_equal(restored.numpy(), table)
