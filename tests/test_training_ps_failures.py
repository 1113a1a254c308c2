"""Parameter-server tasks killed mid-run on loopback: a worker (training
finishes), a ps or the chief (a restart of every task resumes)."""

from __future__ import annotations

import signal

import pytest
import tensorflow as tf
from ps_cluster import (
    cluster_jobs,
    kill_after,
    ps_edits,
    result_steps,
    run_cluster,
    train_eval_args,
    worker_batches,
)

pytestmark = pytest.mark.slow


def test_killed_worker_does_not_stop_training(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = ps_edits(
        taobao_data,
        model_dir,
        **{
            "train_config.num_steps": 40,
            "train_config.save_checkpoints_steps": 20,
            "train_config.log_step_count_steps": 10,
        },
    )
    killed = []
    # After the first logged steps, worker 1 dies.
    kill_worker_1 = kill_after("step 10/40", ("worker", 1), killed)

    status, log = run_cluster(
        cluster_jobs(),
        train_eval_args(edits),
        edits,
        tmp_path / "logs",
        on_progress=kill_worker_1,
    )
    assert killed == [-signal.SIGKILL]
    assert status == 0, log[-3000:]
    assert result_steps(model_dir) == [20, 40]


@pytest.mark.parametrize("task", [("ps", 1), ("chief", 0)])
def test_killed_task_and_a_restart_resumes(taobao_data, tmp_path, task):
    """A dead ps ends the chief in one line; a dead chief lets the
    servers leave by themselves. Restarting every task resumes."""
    model_dir = tmp_path / "model"
    edits = ps_edits(
        taobao_data,
        model_dir,
        **{
            "train_config.num_steps": 30,
            "train_config.save_checkpoints_steps": 10,
            "train_config.log_step_count_steps": 10,
        },
    )
    command = train_eval_args(edits)
    jobs = cluster_jobs()
    killed = []
    kill = kill_after("eval at step 10", task, killed)

    status, log = run_cluster(
        jobs, command, edits, tmp_path / "logs", on_progress=kill
    )
    assert killed == [-signal.SIGKILL]
    latest = tf.train.latest_checkpoint(str(model_dir))
    step = int(latest.rsplit("-", 1)[1])
    assert step in (10, 20)
    if task[0] == "ps":
        assert status == 2, log[-3000:]
        assert (
            f"easymatch: error: TF_CONFIG: ps 1 ({jobs['ps'][1]}) is gone; "
            f"restart every task to resume from the checkpoint of step {step}"
        ) in log
    else:
        # run_cluster gave the servers 60 s to leave; they did, seeing
        # the chief gone.
        for server in ("ps_0", "ps_1", "worker_0", "worker_1"):
            server_log = (tmp_path / "logs" / f"{server}.log").read_text()
            assert "done serving; peak RSS" in server_log, server
    # The restarted cluster (new ports) continues from that checkpoint,
    # each worker from the first of its batches no step trained on.
    status, log = run_cluster(
        cluster_jobs(), command, edits, tmp_path / "again"
    )
    assert status == 0, log[-3000:]
    assert f"resuming from {latest}" in log
    counts = worker_batches(latest)
    assert counts.sum() == step
    for worker, count in enumerate(counts):
        worker_log = (tmp_path / "again" / f"worker_{worker}.log").read_text()
        assert f"worker {worker}: input from batch {count} " in worker_log
    assert result_steps(model_dir)[-1] == 30
