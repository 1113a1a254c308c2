"""Per-worker input under parameter-server training: each worker reads
its own rows in its own process (training/ps_input.py, ps_worker.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ps_cluster import cluster_jobs, ps_edits, run_cluster, train_eval_args

pytestmark = pytest.mark.slow


def test_each_worker_reads_only_its_own_rows(taobao_data, tmp_path):
    """A bad value in the first row of worker 1's half of the rows: the
    run ends in one line from worker 1, whose process read that row; the
    chief and worker 0 never read it."""
    table = pq.read_table(taobao_data / "train.parquet")
    labels = np.ones(table.num_rows)
    first_of_worker_1 = table.num_rows // 2
    labels[first_of_worker_1] = np.inf
    train_path = tmp_path / "train.parquet"
    column = table.schema.get_field_index("clk")
    pq.write_table(
        table.set_column(column, "clk", pa.array(labels)), train_path
    )
    edits = ps_edits(
        taobao_data,
        tmp_path / "model",
        **{"train_input_path": str(train_path), "data_config.shuffle": False},
    )
    logs = tmp_path / "logs"
    status, log = run_cluster(
        cluster_jobs(num_workers=2, num_ps=1),
        train_eval_args(edits),
        edits,
        logs,
    )
    assert status == 2, log[-3000:]
    [line] = [x for x in log.splitlines() if x.startswith("easymatch:")]
    assert line.startswith(
        f"easymatch: error: worker 1: {train_path}: row "
        f"{first_of_worker_1 + 1}, column 'clk': "
    ), line
    for worker in (0, 1):
        assert (
            f"worker {worker}: input from batch 0 of shard {worker}/2"
            in (logs / f"worker_{worker}.log").read_text()
        )
