"""A parameter-server cluster on loopback for tests: chief, workers and
ps tasks as subprocesses with their TF_CONFIG, every one ended by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits

from easymatch.launch import free_port

# user_id_emb (2000 × 16 floats, 128 kB) and the larger tables shard; the
# demo's small ones (cms_segid_emb, 6 kB) stay whole.
SHARD_MIN_BYTES = 100_000

# The chief of train_eval, plus a hook that dumps every sharded table's
# shards (shape, device) and values, and every table's optimizer slots,
# at the end of training.
CHIEF = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    from easymatch.checkpoint.table_slots import tables_of
    from easymatch.config import load_pipeline_config
    from easymatch.training.cluster import PARAMETER_SERVER, read_tf_config
    from easymatch.training.hooks import Hook
    from easymatch.training.ps_loop import (
        sharded_tables_of, train_and_evaluate_ps,
    )
    from easymatch.training.strategies import make_strategy

    class DumpShards(Hook):
        def on_train_end(self, state, step):
            tables = sharded_tables_of(state.model)
            shards = {
                name: [[v.shape.as_list(), v.device] for v in t.variables]
                for name, t in tables.items()
            }
            values = {
                name: tf.concat([v.read_value() for v in t.variables], 0)
                for name, t in tables.items()
            }
            np.savez(sys.argv[3] + ".npz", **values)
            with open(sys.argv[3] + ".json", "w") as handle:
                json.dump(shards, handle)
            # Every table's optimizer slots, sharded or held by Keras.
            model, slots = state.model, {}
            optimizer = model.sparse_optimizer
            for name, _, table in tables_of(model, breadth_first=True):
                if name in tables:
                    found = model.sharded_sparse.slots_of(table)
                    found = [
                        tf.concat([v.read_value() for v in s.variables], 0)
                        for s in found
                    ]
                else:
                    found = optimizer.slot_variables(table)
                for slot, value in zip(optimizer.slot_names, found):
                    slots[f"{name}/{slot}"] = np.asarray(value)
            np.savez(sys.argv[3] + "_slots.npz", **slots)

    cluster = read_tf_config()
    config = load_pipeline_config(sys.argv[1], sys.argv[2])
    train_and_evaluate_ps(
        config,
        strategy=make_strategy(cluster, PARAMETER_SERVER),
        cluster=cluster,
        extra_hooks=[DumpShards()],
    )
    """
)


def ps_edits(data, model_dir, **extra) -> str:
    return demo_edits(
        data,
        model_dir,
        **{"train_config.shard_min_bytes": SHARD_MIN_BYTES, **extra},
    )


def cluster_jobs(num_workers: int = 2, num_ps: int = 2) -> dict:
    return {
        job: [f"127.0.0.1:{free_port()}" for _ in range(count)]
        for job, count in (
            ("chief", 1),
            ("worker", num_workers),
            ("ps", num_ps),
        )
    }


def train_eval_args(edits: str) -> list[str]:
    """train_eval's arguments on the demo config with `edits`."""
    return ["-m", "easymatch.train_eval", "--pipeline_config_path"] + [
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    ]


def kill_after(marker: str, task: tuple, killed: list):
    """on_progress of run_cluster: SIGKILLs `task` (by PID) once the
    chief's log shows `marker`; its status goes into `killed`."""

    def kill(log: str, processes: dict) -> None:
        if not killed and marker in log:
            processes[task].send_signal(signal.SIGKILL)
            killed.append(processes[task].wait())

    return kill


def _start(
    command: list[str], jobs: dict, task: tuple, log
) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["TF_CONFIG"] = json.dumps(
        {"cluster": jobs, "task": {"type": task[0], "index": task[1]}}
    )
    return subprocess.Popen(
        [sys.executable, *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )


def run_cluster(jobs, chief_command, edits, log_dir, on_progress=None):
    """Starts every task (servers run train_eval), waits for the chief;
    returns (chief's status, its log). Every process ends by PID."""
    log_dir.mkdir(parents=True, exist_ok=True)
    train_eval = train_eval_args(edits)
    processes = {}
    try:
        for job in ("ps", "worker"):
            for index in range(len(jobs[job])):
                with open(log_dir / f"{job}_{index}.log", "w") as log:
                    processes[job, index] = _start(
                        train_eval, jobs, (job, index), log
                    )
        chief_log = log_dir / "chief_0.log"
        with open(chief_log, "w") as log:
            processes["chief", 0] = chief = _start(
                chief_command, jobs, ("chief", 0), log
            )
        deadline = time.monotonic() + 900
        while chief.poll() is None and time.monotonic() < deadline:
            if on_progress is not None:
                on_progress(chief_log.read_text(), processes)
            time.sleep(1)
        status = chief.poll()
        # The servers leave once the chief is gone.
        for (job, _), process in processes.items():
            if job != "chief" and process.poll() is None:
                process.wait(timeout=60)
        return status, chief_log.read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def result_steps(model_dir) -> list[int]:
    results = (model_dir / "train_eval_result_v2.txt").read_text()
    return [json.loads(line)["global_step"] for line in results.splitlines()]


def worker_batches(path) -> np.ndarray:
    """The checkpoint's count of each of 2 workers' batches trained on."""
    reader = tf.train.load_checkpoint(str(path))
    return reader.get_tensor("worker_batches_of_2/.ATTRIBUTES/VARIABLE_VALUE")
