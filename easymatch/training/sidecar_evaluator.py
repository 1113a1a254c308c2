"""The evaluator task (TF's sidecar evaluator pattern).

When TF_CONFIG names an `evaluator` task, the training tasks do not
evaluate: that process (`python -m easymatch.train_eval`, same arguments)
evaluates each checkpoint of model_dir as it appears, in step order, and
does what the chief would have done after an evaluation: append to
train_eval_result_v2.txt, write eval summaries, log, export. It builds
the model in one process with the default strategy, whatever strategy
trains it (MWMS or parameter servers), and restores weights only.

It ends once it has evaluated the checkpoint that the chief marked final
(`TrainingDoneHook`, written after the last checkpoint); a mark older
than the evaluator is a previous run's (a resumed run's evaluator may
start before its chief removes it). A checkpoint that `keep_checkpoint_max`
deleted before the evaluator got to it is reported, not silently
missed: the chief also records every step it saves (`SAVED_FILE`), and
each saved step with neither a checkpoint nor an evaluation gets a
warning and a `{"global_step": s, "skipped": ...}` line in
train_eval_result_v2.txt; the last log line lists them. The chief's
address answering is the chief being alive, as for `serve`: a chief that
stops answering before the mark, or never answers within the peer
timeout, ends the evaluator with one line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable

import tensorflow as tf

from easymatch import checkpoint
from easymatch.errors import EasyMatchError
from easymatch.run_context import RunContext
from easymatch.training.checkpoint_hooks import EvalResultHook, ExportHook
from easymatch.training.cluster import (
    Cluster,
    ClusterError,
    peer_timeout,
    reachable,
)
from easymatch.training.evaluate import Evaluator
from easymatch.training.hooks import (
    Hook,
    LoggingHook,
    TensorBoardHook,
    TrainState,
)

logger = logging.getLogger("easymatch")

DONE_FILE = "training_done.json"
SAVED_FILE = "saved_steps.txt"
SKIPPED = "checkpoint deleted by keep_checkpoint_max before evaluation"


class TrainingDoneHook(Hook):
    """Marks model_dir's last checkpoint final for the evaluator task, and
    records the step of every checkpoint saved."""

    chief_only = True

    def on_checkpoint(self, state: TrainState, step: int) -> None:
        with open(os.path.join(state.model_dir, SAVED_FILE), "a") as out:
            out.write(f"{step}\n")

    def on_train_begin(self, state: TrainState) -> None:
        path = os.path.join(state.model_dir, DONE_FILE)
        if os.path.exists(path):
            os.remove(path)

    def on_train_end(self, state: TrainState, step: int) -> None:
        path = os.path.join(state.model_dir, DONE_FILE)
        with open(path + ".tmp", "w") as out:
            json.dump({"global_step": step}, out)
        os.replace(path + ".tmp", path)


def final_step(model_dir: str, since: float) -> int | None:
    """The step the chief marked final after `since` (a time), or None."""
    path = os.path.join(model_dir, DONE_FILE)
    try:
        if os.path.getmtime(path) < since:
            return None  # a previous run's mark
        with open(path) as source:
            return int(json.load(source)["global_step"])
    except (OSError, ValueError, KeyError):
        return None


def _saved_steps(model_dir: str) -> set[int]:
    try:
        with open(os.path.join(model_dir, SAVED_FILE)) as source:
            return {int(line) for line in source if line.strip()}
    except OSError:
        return set()


def _report_skipped(model_dir: str, after: int, before: int) -> list[int]:
    """The steps saved after `after` and before `before` that have no
    evaluation recorded (their checkpoints are gone): each is logged and
    recorded as skipped; returns them."""
    recorded = {
        r["global_step"] for r in checkpoint.read_eval_results(model_dir)
    }
    skipped = sorted(
        step
        for step in _saved_steps(model_dir)
        if after < step < before and step not in recorded
    )
    for step in skipped:
        logger.warning("step %d: %s; not evaluated", step, SKIPPED)
        checkpoint.append_eval_result(model_dir, step, {"skipped": SKIPPED})
    return skipped


def _gone(path: str) -> bool:
    """Whether the checkpoint's files are deleted, or being deleted (TF
    deletes the data files first): its index or a data file missing."""
    data = tf.io.gfile.glob(f"{path}.data-*-of-*")
    if not data or not tf.io.gfile.exists(f"{path}.index"):
        return True
    return len(data) < int(data[0].rsplit("-of-", 1)[1])


def checkpoints_after(model_dir: str, step: int) -> list[str]:
    """model_dir's checkpoints saved after `step`, oldest first."""
    state = tf.train.get_checkpoint_state(model_dir)
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths)
    return sorted(
        (p for p in paths if checkpoint.checkpoint_step(p) > step),
        key=checkpoint.checkpoint_step,
    )


def run_evaluator(
    config,
    cluster: Cluster,
    make_exporter: Callable | None = None,
    poll_seconds: float = 2.0,
) -> dict[str, float]:
    """Evaluates model_dir's checkpoints until the final one; returns its
    metrics."""
    os.makedirs(config.model_dir, exist_ok=True)
    started = time.time()
    run = RunContext(config)
    model = run.create_model()
    evaluate = Evaluator(model, run)
    # What the chief runs after an evaluation (loop.default_hooks).
    hooks: list[Hook] = [EvalResultHook(), LoggingHook()]
    if config.train_config.use_tensorboard:
        hooks.append(TensorBoardHook())
    if make_exporter is not None:
        hooks.append(ExportHook(make_exporter))
    state = TrainState(run, model, 0, hooks)
    for hook in hooks:
        hook.on_train_begin(state)
    chief = _chief_address(cluster)
    deadline = time.monotonic() + peer_timeout()
    evaluated, seen, skipped = -1, False, []
    while True:
        for path in checkpoints_after(config.model_dir, evaluated):
            step = checkpoint.checkpoint_step(path)
            try:
                checkpoint.restore(model, path, with_optimizers=False)
            except EasyMatchError:
                if not _gone(path):
                    raise
                continue  # deleted meanwhile: skipped, reported below
            skipped += _report_skipped(config.model_dir, evaluated, step)
            state.evaluated(step, evaluate(config.eval_input_path))
            evaluated = step
        final = final_step(config.model_dir, started)
        if final is not None and evaluated >= final:
            break
        if final is None:
            alive = reachable(chief)
            seen = seen or alive
            if seen and not alive:
                raise ClusterError(
                    f"TF_CONFIG: chief ({chief}) ended before marking its "
                    "final checkpoint; the evaluator stops"
                )
            if not seen and time.monotonic() > deadline:
                raise ClusterError(
                    f"TF_CONFIG: chief ({chief}) unreachable after "
                    f"{peer_timeout():g} s"
                )
        time.sleep(poll_seconds)
    for hook in hooks:
        hook.on_train_end(state, evaluated)
    logger.info(
        "evaluator: done at step %d; not evaluated (%s): %s",
        evaluated,
        SKIPPED,
        ", ".join(map(str, skipped)) or "none",
    )
    return state.metrics


def _chief_address(cluster: Cluster) -> str:
    job = "chief" if "chief" in cluster.jobs else "worker"
    return cluster.address(job, 0)
