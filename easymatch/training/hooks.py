"""The training loop's hook interface and the hooks that report progress.

The step loop (loop.py) runs training steps and calls every hook at fixed
points; each hook does one thing (log, progress bar, summaries,
checkpoint, evaluation, export) and can be tested alone. Hooks that write
to model_dir or the console are `chief_only`: in a multi-worker run only
the chief runs them; every worker runs the others (checkpoint saves and
evaluations are collective).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

import keras
import tensorflow as tf

from easymatch.models.match_model import MatchModel
from easymatch.run_context import RunContext

logger = logging.getLogger("easymatch")


@dataclass
class TrainState:
    """What the loop shares with its hooks."""

    run: RunContext
    model: MatchModel
    last_step: int
    hooks: list[Hook]
    # The step training (re)starts from, known after `on_train_begin`.
    start_step: int = 0
    # The step of model_dir's latest checkpoint, None before the first.
    saved_step: int | None = None
    # The latest evaluation's metrics (what train_and_evaluate returns).
    metrics: dict[str, float] = field(default_factory=dict)
    # Where checkpoints are saved: model_dir, or a non-chief worker's
    # scratch directory ("" means model_dir).
    checkpoint_dir: str = ""

    @property
    def model_dir(self) -> str:
        return self.run.config.model_dir

    def evaluated(self, step: int, metrics: dict[str, float]) -> None:
        """Hands an evaluation to every hook's `after_evaluation`."""
        self.metrics = metrics
        for hook in self.hooks:
            hook.after_evaluation(self, step, metrics)


class Hook:
    """Does nothing at every point; subclasses override what they need."""

    # Runs on the chief only (it writes files or the console).
    chief_only = False

    def on_train_begin(self, state: TrainState) -> None:
        """Before the first step (checkpoints restore here)."""

    def after_steps(
        self, state: TrainState, step: int, logs: dict[str, float] | None
    ) -> None:
        """After each call of the step function, at global `step`; `logs`
        is set at logging steps only (loss, metrics, steps_per_sec,
        learning_rate)."""

    def on_checkpoint(self, state: TrainState, step: int) -> None:
        """At every save interval, and at the end of training."""

    def after_evaluation(
        self, state: TrainState, step: int, metrics: dict[str, float]
    ) -> None:
        """After an evaluation of the checkpoint at `step`."""

    def on_train_end(self, state: TrainState, step: int) -> None:
        """After the last step and its checkpoint."""


class ProgressHook(Hook):
    """A step progress bar, on an interactive console only."""

    chief_only = True

    def __init__(self, interactive: bool | None = None) -> None:
        self.interactive = (
            sys.stdout.isatty() if interactive is None else interactive
        )
        self.bar: keras.utils.Progbar | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.bar = keras.utils.Progbar(
            state.last_step,
            unit_name="step",
            verbose=1 if self.interactive else 0,
        )

    def after_steps(self, state, step, logs) -> None:
        self.bar.update(step)
        if logs is not None and self.interactive:
            # Keep the bar: the log line starts below it.
            sys.stdout.write("\n")


class LoggingHook(Hook):
    """One log line per logging step and per evaluation."""

    chief_only = True

    def after_steps(self, state, step, logs) -> None:
        if logs is None:
            return
        logger.info(
            "step %d/%d: %s",
            step,
            state.last_step,
            " ".join(f"{k}={v:.6g}" for k, v in logs.items()),
        )

    def after_evaluation(self, state, step, metrics) -> None:
        logger.info("eval at step %d: %s", step, metrics)


class TensorBoardHook(Hook):
    """Scalars of training logs (model_dir/train) and evaluations
    (model_dir/eval)."""

    chief_only = True

    def __init__(self) -> None:
        self.writers: dict[str, tf.summary.SummaryWriter] = {}

    def on_train_begin(self, state: TrainState) -> None:
        for name in ("train", "eval"):
            self.writers[name] = tf.summary.create_file_writer(
                os.path.join(state.model_dir, name)
            )

    def _write(self, name: str, step: int, values: dict[str, float]) -> None:
        with self.writers[name].as_default(step=step):
            for key, value in values.items():
                tf.summary.scalar(key, value)

    def after_steps(self, state, step, logs) -> None:
        if logs is not None:
            self._write("train", step, logs)

    def after_evaluation(self, state, step, metrics) -> None:
        self._write("eval", step, metrics)

    def on_train_end(self, state, step) -> None:
        for writer in self.writers.values():
            writer.close()
