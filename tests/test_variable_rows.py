"""Row reads of distributed variables (easymatch/variable_rows.py): under
a two-replica MirroredStrategy an embedding lookup and a row-sparse
Adagrad step read only the rows they gather, and update the table as one
process does with the whole batch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from conftest import ROOT

SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from easymatch.layers import EmbeddingTables
    from easymatch.specs.embedding import TableSpec
    from easymatch.training.sparse_optimizers import RowSparseAdagrad

    SPEC = TableSpec("t", 6, 2, {"class_name": "Constant",
                                 "config": {"value": 0.5}})
    # Replica 0 reads rows 1, 1, 3; replica 1 rows 3, 4.
    IDS = [[1, 1, 3], [3, 4, -1]]

    def table_after_one_step(strategy, per_replica_ids):
        with strategy.scope():
            tables = EmbeddingTables([SPEC])
            optimizer = RowSparseAdagrad(learning_rate=0.1)
            optimizer.build(tables.embedding_variables)

        def step(ids):
            with tf.GradientTape() as tape:
                rows = tables({"t": ids})["t"]
                loss = tf.reduce_sum(rows * tf.constant([1.0, 2.0]))
            variables = tables.embedding_variables
            gradients = tape.gradient(loss, variables)
            optimizer.apply(gradients, variables)
            return gradients[0]

        function = tf.function(lambda ids: strategy.run(step, args=(ids,)))
        gradient = function(per_replica_ids)
        graph = function.get_concrete_function(per_replica_ids).graph
        # What each gather reads from: a variable's rows (ResourceGather)
        # or a tensor, e.g. a whole-variable read (ReadVariableOp).
        reads = sorted(
            {
                op.type if op.type == "ResourceGather"
                else op.inputs[0].op.type
                for op in graph.get_operations()
                if op.type in ("ResourceGather", "GatherV2")
            }
        )
        kinds = [
            type(g).__name__
            for g in strategy.experimental_local_results(gradient)
        ]
        value = tables.embedding_variables[0].numpy().tolist()
        return value, kinds, reads

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    dataset = tf.data.Dataset.from_tensor_slices(
        tf.constant([IDS[0], IDS[1]], tf.int64)
    ).batch(2)
    split = next(iter(mirrored.experimental_distribute_dataset(dataset)))
    two, kinds, reads = table_after_one_step(mirrored, split)
    one, _, _ = table_after_one_step(
        tf.distribute.get_strategy(),
        tf.constant([[1, 1, 3, 3, 4, -1]], tf.int64),
    )
    print(json.dumps({"two": two, "one": one, "kinds": kinds,
                      "reads": reads}))
    """
)


def test_mirrored_step_reads_rows_and_updates_as_one_process():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    # Gradients stay row-sparse on each replica.
    assert out["kinds"] == ["IndexedSlices", "IndexedSlices"]
    # The table and slots are read by row gathers, never gathered from a
    # whole-variable read.
    assert "ResourceGather" in out["reads"]
    assert "ReadVariableOp" not in out["reads"]
    # Adagrad from accumulator 0: a touched row moves by lr·sign(g) per
    # column, -0.1 · (1, 1) from 0.5 (g = (n, 2n) for n reads of the row);
    # untouched rows 0, 2 and 5 stay 0.5. One process on the whole batch
    # gives the same table.
    moved = [0.4, 0.4]
    still = [0.5, 0.5]
    expected = [still, moved, still, moved, moved, still]
    assert out["two"] == out["one"]
    np.testing.assert_allclose(out["two"], expected, atol=1e-6)
