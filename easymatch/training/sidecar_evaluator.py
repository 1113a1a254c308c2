"""The evaluator task (TF's sidecar evaluator pattern).

When TF_CONFIG names an `evaluator` task, the training tasks do not
evaluate: that process (`python -m easymatch.train_eval`, same arguments)
evaluates each checkpoint of model_dir as it appears, in step order, and
does what the chief would have done after an evaluation: append to
train_eval_result_v2.txt, write eval summaries, log, export. It builds
the model in one process with the default strategy, whatever strategy
trains it (MWMS or parameter servers), and restores weights only.

It ends once it has evaluated the checkpoint that the chief marked final
(`TrainingDoneHook`, written after the last checkpoint). The chief's
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


class TrainingDoneHook(Hook):
    """Marks model_dir's last checkpoint final for the evaluator task."""

    chief_only = True

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
    evaluated, seen = -1, False
    while True:
        for path in checkpoints_after(config.model_dir, evaluated):
            step = checkpoint.checkpoint_step(path)
            try:
                checkpoint.restore(model, path, with_optimizers=False)
            except (tf.errors.NotFoundError, ValueError):
                logger.warning("%s: gone before evaluation, skipped", path)
                continue
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
    return state.metrics


def _chief_address(cluster: Cluster) -> str:
    job = "chief" if "chief" in cluster.jobs else "worker"
    return cluster.address(job, 0)
