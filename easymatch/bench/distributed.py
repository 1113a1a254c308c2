"""One process against a loopback cluster: examples/s and peak RSS per task.

Each layout runs `python -m easymatch.train_eval` as real processes, one
per task, with its own TF_CONFIG on 127.0.0.1 (as easymatch.launch
does), on the same config and data. Throughput is the chief's logged
steps/s over the second half of the run (the first half absorbs start-up
and tracing) × batch_size × training workers. Peak RSS comes from
`wait4` on each task's process, so it is that task's own figure.

A layout is a dict job → task count: {} is one process, {"worker": 2}
two MWMS workers; a parameter-server layout ({"chief": 1, "worker": 2,
"ps": 2}) runs the same way.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from easymatch.config import save_pipeline_config
from easymatch.launch import free_port

LAYOUTS = {
    "1_process": {},
    "2_mwms_workers": {"worker": 2},
    "2_workers_2_ps": {"chief": 1, "worker": 2, "ps": 2},
}
_STEPS_PER_SEC = re.compile(r"step (\d+)/\d+: .*steps_per_sec=([0-9.e+-]+)")


def user_table_config(config, user_rows: int, steps: int):
    """The config with a `user_rows`-row user_id table, training `steps`
    steps with no evaluation, export or intermediate checkpoint."""
    config.eval_input_path = ""
    config.ClearField("export_config")
    train = config.train_config
    train.num_steps = steps
    train.num_epochs = 0
    train.save_checkpoints_steps = steps
    train.log_step_count_steps = max(steps // 2, 1)
    for feature in config.feature_configs:
        if feature.WhichOneof("feature") != "id_feature":
            continue
        if feature.id_feature.feature_name == "user_id":
            feature.id_feature.num_buckets = user_rows
    return config


def run_layout(config, layout: dict[str, int], timeout: float) -> dict:
    """Trains `config` with the tasks of `layout`; per-task peak RSS (MB)
    and the chief's steady examples/s."""
    work = tempfile.mkdtemp(prefix="easymatch-bench-dist-")
    try:
        config.model_dir = os.path.join(work, "model")
        path = os.path.join(work, "pipeline.config")
        save_pipeline_config(config, path)
        jobs = {
            job: [f"127.0.0.1:{free_port()}" for _ in range(count)]
            for job, count in layout.items()
        }
        tasks = [
            (job, i) for job, addrs in jobs.items() for i in range(len(addrs))
        ]
        if not tasks:
            tasks = [("process", 0)]
        chief = ("chief", 0) if "chief" in jobs else tasks[0]
        started = time.perf_counter()
        processes = {}
        for task in tasks:
            env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
            env.pop("TF_CONFIG", None)
            if jobs:
                env["TF_CONFIG"] = json.dumps(
                    {
                        "cluster": jobs,
                        "task": {"type": task[0], "index": task[1]},
                    }
                )
            log = open(os.path.join(work, f"{task[0]}_{task[1]}.log"), "w")  # noqa: SIM115
            processes[task] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "easymatch.train_eval",
                    "--pipeline_config_path",
                    path,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            log.close()
        rss, status = _wait_all(processes, started + timeout)
        seconds = time.perf_counter() - started
        chief_log = os.path.join(work, f"{chief[0]}_{chief[1]}.log")
        with open(chief_log) as source:
            text = source.read()
        if status[chief] != 0:
            raise RuntimeError(f"{chief} failed:\n{text[-3000:]}")
        rates = _STEPS_PER_SEC.findall(text)
        workers = training_workers(layout)
        batch = config.data_config.batch_size
        return {
            "examples_per_sec": float(rates[-1][1]) * batch * workers,
            "global_batch": batch * workers,
            "peak_rss_mb": {f"{j}_{i}": mb for (j, i), mb in rss.items()},
            "wall_seconds": seconds,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait_all(processes: dict, deadline: float) -> tuple[dict, dict]:
    """Waits for every task (killing all at the deadline); their peak
    RSS in MB and exit statuses."""
    rss, status = {}, {}
    try:
        while len(status) < len(processes):
            if time.perf_counter() > deadline:
                raise TimeoutError("distributed bench: a layout timed out")
            for task, process in processes.items():
                if task in status:
                    continue
                pid, code, usage = os.wait4(process.pid, os.WNOHANG)
                if pid == 0:
                    continue
                process.returncode = os.waitstatus_to_exitcode(code)
                status[task] = process.returncode
                rss[task] = usage.ru_maxrss / 1024.0
            time.sleep(0.2)
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.kill()
                process.wait()
    return rss, status


def training_workers(layout: dict[str, int]) -> int:
    """Batches of `batch_size` per logged step: one per MWMS worker (and
    chief); under parameter servers one, since a step is one worker's
    batch and the chief's steps/s counts every worker's steps."""
    if layout.get("ps"):
        return 1
    return max(layout.get("worker", 0) + layout.get("chief", 0), 1)


def distributed(config, layouts: dict[str, dict], timeout: float) -> dict:
    """run_layout for each named layout, one after the other."""
    return {
        name: run_layout(config, layout, timeout)
        for name, layout in layouts.items()
    }
