"""Hooks around checkpoints: restore and save, evaluate, record, export."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import tensorflow as tf

from easymatch import checkpoint
from easymatch.config import save_pipeline_config
from easymatch.export.input_schema import record_input_schema
from easymatch.training.evaluate import Evaluator
from easymatch.training.hooks import Hook, TrainState

logger = logging.getLogger("easymatch")

PIPELINE_CONFIG = "pipeline.config"


class RunFilesHook(Hook):
    """Writes pipeline.config and the input schema into model_dir, so
    eval, export and predict need no training data."""

    chief_only = True

    def on_train_begin(self, state: TrainState) -> None:
        run = state.run
        config = run.config
        save_pipeline_config(
            config, os.path.join(state.model_dir, PIPELINE_CONFIG)
        )
        reader = run.reader(config.train_input_path, training=True)
        record_input_schema(run, reader, state.model_dir)


class CheckpointHook(Hook):
    """Restores model_dir's latest checkpoint (else the fine-tune one) at
    the start, and saves one at every `on_checkpoint`.

    Every worker saves: a distributed save is collective.
    """

    def __init__(
        self,
        *,
        keep_checkpoint_max: int = 0,
        fine_tune_checkpoint: str = "",
        ignore_restore_optimizer: bool = False,
    ) -> None:
        self.keep_checkpoint_max = keep_checkpoint_max
        self.fine_tune_checkpoint = fine_tune_checkpoint
        self.ignore_restore_optimizer = ignore_restore_optimizer
        self.manager: tf.train.CheckpointManager | None = None

    def on_train_begin(self, state: TrainState) -> None:
        model = state.model
        self.manager = checkpoint.make_manager(
            checkpoint.make_checkpoint(model),
            state.checkpoint_dir or state.model_dir,
            self.keep_checkpoint_max,
        )
        # A non-chief worker saves elsewhere but resumes from model_dir
        # as the chief does (its manager there only reads).
        source = self.manager
        if state.checkpoint_dir and state.checkpoint_dir != state.model_dir:
            source = checkpoint.make_manager(
                checkpoint.make_checkpoint(model), state.model_dir, 0
            )
        # A damaged newest checkpoint falls back to the one before it.
        latest = checkpoint.latest_readable(source)
        if latest:
            logger.info("resuming from %s", latest)
            checkpoint.restore(
                model, latest, with_optimizers=not self.ignore_restore_optimizer
            )
            state.saved_step = checkpoint.checkpoint_step(latest)
            if self.ignore_restore_optimizer:
                model.optimizer.iterations.assign(state.saved_step)
        elif self.fine_tune_checkpoint:
            logger.info("initializing from %s", self.fine_tune_checkpoint)
            checkpoint.restore(
                model, self.fine_tune_checkpoint, with_optimizers=False
            )

    def on_checkpoint(self, state: TrainState, step: int) -> None:
        self.manager.save(checkpoint_number=step)
        state.saved_step = step


class EvaluationHook(Hook):
    """Evaluates every saved checkpoint on `input_path` and hands the
    metrics to the hooks' `after_evaluation`.

    When the run trained no step (its checkpoint was saved before), the
    recorded evaluation of that checkpoint is the result, else it is
    evaluated once more.
    """

    def __init__(self, input_path: str) -> None:
        self.input_path = input_path
        self.evaluator: Evaluator | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.evaluator = Evaluator(state.model, state.run)

    def on_checkpoint(self, state: TrainState, step: int) -> None:
        state.evaluated(step, self.evaluator(self.input_path))

    def on_train_end(self, state: TrainState, step: int) -> None:
        if state.metrics:
            return
        recorded = [
            result
            for result in checkpoint.read_eval_results(state.model_dir)
            if result["global_step"] == step
        ]
        if recorded:
            metrics = dict(recorded[-1])
            del metrics["global_step"]
            state.metrics = metrics
        else:
            state.metrics = self.evaluator(self.input_path)


class EvalResultHook(Hook):
    """Appends each evaluation to model_dir's train_eval_result file."""

    chief_only = True

    def after_evaluation(self, state, step, metrics) -> None:
        checkpoint.append_eval_result(state.model_dir, step, metrics)


class ExportHook(Hook):
    """Runs `export(model, step, metrics)` after every evaluation (the
    exporters of export_config); `make_exporter(run)` makes `export`
    from the run's context once, or returns None for no exports."""

    chief_only = True

    def __init__(self, make_exporter: Callable) -> None:
        self.make_exporter = make_exporter
        self.export: Callable | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.export = self.make_exporter(state.run)

    def after_evaluation(self, state, step, metrics) -> None:
        if self.export is not None:
            self.export(state.model, step, metrics)
