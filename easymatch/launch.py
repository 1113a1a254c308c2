"""python -m easymatch.launch: a local cluster of train_eval processes.

    python -m easymatch.launch --num_workers 2 [--num_ps 2] [--evaluator] \\
        -- --pipeline_config_path samples/dssm_demo.config

Starts every task of a loopback cluster (free ports on 127.0.0.1) as
`python -m easymatch.train_eval <args>` with its own TF_CONFIG, the way a
cluster manager would: without ps, `num_workers` workers (worker 0 is the
chief) train with MultiWorkerMirroredStrategy; with ps, a chief runs the
loop, `num_workers` workers and `num_ps` ps serve (ParameterServerStrategy).
Each task's output goes to model_dir/logs/<task>_<index>.log. The launcher
exits with the chief's status once the chief ends, after ending every task
it started (by PID); Ctrl-C ends them too. A training worker that fails
under MultiWorkerMirroredStrategy ends the run, since the others would wait
for it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from easymatch import cli

GRACE_SECONDS = 10.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster_spec(
    num_workers: int, num_ps: int, evaluator: bool
) -> dict[str, list[str]]:
    def addresses(count: int) -> list[str]:
        return [f"127.0.0.1:{free_port()}" for _ in range(count)]

    if num_ps:
        jobs = {
            "chief": addresses(1),
            "worker": addresses(num_workers),
            "ps": addresses(num_ps),
        }
    else:
        jobs = {"worker": addresses(num_workers)}
    if evaluator:
        jobs["evaluator"] = addresses(1)
    return jobs


def tasks(jobs: dict[str, list[str]]) -> list[tuple[str, int]]:
    """(type, index) of every task, the chief first."""
    order = ["chief", "worker", "ps", "evaluator"]
    return [
        (job, index)
        for job in order
        for index in range(len(jobs.get(job, [])))
    ]


def tf_config(jobs: dict[str, list[str]], task: tuple[str, int]) -> str:
    # Every task sees the evaluator job, so the training tasks leave
    # evaluation to it (TF lets an evaluator be listed; it trains nothing).
    return json.dumps(
        {"cluster": jobs, "task": {"type": task[0], "index": task[1]}}
    )


def model_dir_of(train_args: list[str]) -> str:
    """model_dir as train_eval will resolve it (flags and edits applied)."""
    from easymatch.train_eval import build_parser

    args = build_parser().parse_args(train_args)
    return cli.load_config(args, model_dir=args.model_dir).model_dir


def end(processes: dict[tuple[str, int], subprocess.Popen]) -> None:
    """SIGTERM every running task, SIGKILL what outlives the grace."""
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + GRACE_SECONDS
    for process in processes.values():
        try:
            process.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def launch(
    num_workers: int, num_ps: int, evaluator: bool, train_args: list[str]
) -> int:
    """Runs the cluster; returns the exit status."""
    log_dir = Path(model_dir_of(train_args)) / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    jobs = cluster_spec(num_workers, num_ps, evaluator)
    chief = ("chief", 0) if num_ps else ("worker", 0)
    processes: dict[tuple[str, int], subprocess.Popen] = {}
    # A SIGTERM to the launcher ends the tasks as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        for task in tasks(jobs):
            log = open(log_dir / f"{task[0]}_{task[1]}.log", "w")  # noqa: SIM115
            env = dict(os.environ, TF_CONFIG=tf_config(jobs, task))
            processes[task] = subprocess.Popen(
                [sys.executable, "-m", "easymatch.train_eval", *train_args],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            log.close()
        print(
            f"easymatch.launch: {len(processes)} tasks, logs in {log_dir}",
            file=sys.stderr,
        )
        return watch(processes, chief, collective=not num_ps, log_dir=log_dir)
    except KeyboardInterrupt:
        print("easymatch.launch: interrupted", file=sys.stderr)
        return 130
    finally:
        end(processes)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def watch(
    processes: dict[tuple[str, int], subprocess.Popen],
    chief: tuple[str, int],
    *,
    collective: bool,
    log_dir: Path,
) -> int:
    """Waits for the chief (and under MWMS for a failing worker)."""
    while True:
        status = processes[chief].poll()
        if status is not None:
            if evaluator := processes.get(("evaluator", 0)):
                # It stops by itself after the final checkpoint.
                code = evaluator.wait()
                if status == 0 and code != 0:
                    print(
                        f"easymatch.launch: error: the evaluator exited "
                        f"with status {code}; see "
                        f"{log_dir / 'evaluator_0.log'}",
                        file=sys.stderr,
                    )
                    return code
            return status
        for (job, index), process in processes.items():
            code = process.poll()
            if collective and job == "worker" and code not in (None, 0):
                print(
                    f"easymatch.launch: error: {job} {index} exited with "
                    f"status {code}; see {log_dir / f'{job}_{index}.log'}",
                    file=sys.stderr,
                )
                return code
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        usage="python -m easymatch.launch --num_workers N [--num_ps M] "
        "[--evaluator] -- <train_eval args>",
    )
    parser.add_argument("--num_workers", type=int, required=True)
    parser.add_argument("--num_ps", type=int, default=0)
    parser.add_argument(
        "--evaluator",
        action="store_true",
        help="an evaluator task evaluates each new checkpoint",
    )
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    if args.num_workers < 1 or args.num_ps < 0:
        parser.error("--num_workers must be >= 1 and --num_ps >= 0")
    train_args = argv[split + 1 :]
    if not train_args:
        parser.error("train_eval arguments follow '--'")
    cli.run(
        lambda _: sys.exit(
            launch(args.num_workers, args.num_ps, args.evaluator, train_args)
        ),
        args,
    )


if __name__ == "__main__":
    main()
