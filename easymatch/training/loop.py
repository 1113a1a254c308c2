"""train_and_evaluate: a step loop around MatchModel.train_step, and hooks.

A custom loop over `strategy.run` rather than `model.fit`, so checkpoints,
evaluations and exports happen at exact global steps and a restarted run
continues from the last checkpoint's step with the data it had not seen.
The loop only schedules steps; everything else is a hook (hooks.py,
checkpoint_hooks.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from easymatch.data.dataset import input_shard, make_dataset
from easymatch.errors import EasyMatchError, raise_tf_error
from easymatch.models.match_model import MatchModel
from easymatch.run_context import RunContext
from easymatch.training.checkpoint_hooks import (
    CheckpointHook,
    EvalResultHook,
    EvaluationHook,
    ExportHook,
    RunFilesHook,
)
from easymatch.training.cluster import read_tf_config
from easymatch.training.hooks import (
    Hook,
    LoggingHook,
    ProgressHook,
    TensorBoardHook,
    TrainState,
)
from easymatch.training.model_dir_lock import ModelDirLock
from easymatch.training.non_finite import all_finite, check_finite, split_logs
from easymatch.training.run_seed import seed_keras, shared_run_seed
from easymatch.training.sidecar_evaluator import TrainingDoneHook

logger = logging.getLogger("easymatch")


def make_train_steps(model: MatchModel, strategy: tf.distribute.Strategy):
    """`train_steps(iterator, count)`: up to `count` training steps in one
    call; returns (steps run, the last step's per-replica logs). A call
    ends early after a step that was not finite (non_finite.py).

    Taking the iterator (not a batch) traces once: every batch's padded
    sequence widths differ, but the iterator's type does not. `count` is a
    tensor for the same reason.
    """

    @tf.function
    def train_steps(iterator, count):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        done = tf.constant(1)
        for _ in tf.range(count - 1):
            # A non-finite step ends the call; the loop stops there.
            if not all_finite(logs, strategy):
                break
            batch = iterator.get_next_as_optional()
            if not batch.has_value():
                break
            logs = strategy.run(model.train_step, args=(batch.get_value(),))
            done += 1
        return done, logs

    return train_steps


def total_steps(config, steps_per_epoch: int) -> int:
    train_config = config.train_config
    if train_config.num_steps:
        return train_config.num_steps
    return train_config.num_epochs * steps_per_epoch


def save_interval(config, steps_per_epoch: int) -> int:
    train_config = config.train_config
    if train_config.save_checkpoints_epochs > 0:
        return train_config.save_checkpoints_epochs * steps_per_epoch
    return max(train_config.save_checkpoints_steps, 1)


def steps_per_call(config) -> int:
    # Several replicas too: their row-sparse gradients are summed by
    # gathers that change shape from step to step (varying_gather.py).
    return max(config.train_config.steps_per_execution, 1)


def train_dataset_fn(run: RunContext, start_step: int) -> Callable:
    """Each worker's training input (an InputContext → its tf.data), from
    the batch after `start_step`."""
    config = run.config
    negatives = run.negatives(training=True)
    train_config = config.train_config
    num_epochs = None if train_config.num_steps else train_config.num_epochs

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        # batch_size is per worker (global batch: batch_size × workers, as
        # in TorchEasyRec), split over the worker's local replicas; the
        # worker reads its own shard of the rows.
        shard = input_shard(context)
        per_pipeline = context.num_replicas_in_sync // shard[1]
        reader = run.reader(
            config.train_input_path,
            training=True,
            batch_size=max(run.specs.data.batch_size // per_pipeline, 1),
            shard=shard,
        )
        # Each step takes one batch per local replica; each worker draws
        # its own negatives from the run seed's streams (run_seed.py).
        streams = None
        if negatives is not None:
            streams = negatives.for_stream(context.input_pipeline_id)
        return make_dataset(
            reader,
            run.transform,
            num_epochs=num_epochs,
            skip_batches=start_step * per_pipeline,
            negatives=streams,
            first_step=start_step * per_pipeline,
        )

    return dataset_fn


def train_iterator(run: RunContext, start_step: int):
    """The distributed training input, from the batch after `start_step`."""
    return iter(
        run.strategy.distribute_datasets_from_function(
            train_dataset_fn(run, start_step)
        )
    )


class Trainer:
    """The step loop: runs steps in calls of up to `steps_per_call`, never
    past a step that logs, saves or ends training, and calls the hooks."""

    def __init__(
        self,
        run: RunContext,
        model: MatchModel,
        hooks: Sequence[Hook],
        *,
        is_chief: bool = True,
    ) -> None:
        self.run = run
        self.model = model
        self.hooks = [h for h in hooks if is_chief or not h.chief_only]
        config = run.config
        # Every worker's shard has as many batches (data/shards.py).
        steps_per_epoch = run.reader(
            config.train_input_path,
            training=True,
            shard=(0, run.num_workers),
        ).num_batches()
        if steps_per_epoch == 0:
            raise EasyMatchError(
                f"{config.train_input_path}: the training input has no rows"
            )
        self.last_step = total_steps(config, steps_per_epoch)
        self.interval = save_interval(config, steps_per_epoch)
        self.log_every = max(config.train_config.log_step_count_steps, 1)
        self.per_call = steps_per_call(config)
        # Where CheckpointHook saves (model_dir unless a scratch dir).
        self.checkpoint_dir = config.model_dir

    def _logs(self, logs: dict, steps: int, seconds: float) -> dict:
        values = {
            name: float(self.run.strategy.experimental_local_results(v)[0])
            for name, v in logs.items()
        }
        values["steps_per_sec"] = steps / seconds
        values["learning_rate"] = float(
            keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        )
        return values

    def train(self) -> dict[str, float]:
        """Trains to the last step; returns the last evaluation."""
        state = TrainState(
            self.run,
            self.model,
            self.last_step,
            self.hooks,
            checkpoint_dir=self.checkpoint_dir,
        )
        for hook in self.hooks:
            hook.on_train_begin(state)
        step = state.start_step = int(self.model.optimizer.iterations.numpy())
        iterator = train_iterator(self.run, step)
        train_steps = make_train_steps(self.model, self.run.strategy)
        tick, tick_step = time.perf_counter(), step
        while step < self.last_step:
            count = min(
                self.per_call,
                self.last_step - step,
                self.log_every - step % self.log_every,
                self.interval - step % self.interval,
            )
            try:
                done, logs = train_steps(iterator, tf.constant(count))
            except (StopIteration, tf.errors.OutOfRangeError):
                logger.warning("training input ended at step %d", step)
                break
            except (
                tf.errors.InvalidArgumentError,
                tf.errors.UnknownError,
            ) as error:
                raise_tf_error(error, self.run.config.train_input_path)
            step += int(done)
            logs, finite, loss_terms = split_logs(logs, self.run.strategy)
            check_finite(self.model, finite, loss_terms, step, state.saved_step)
            values = None
            if step % self.log_every == 0 or step == self.last_step:
                now = time.perf_counter()
                values = self._logs(logs, step - tick_step, now - tick)
                tick, tick_step = now, step
            for hook in self.hooks:
                hook.after_steps(state, step, values)
            if values is not None:
                for metric in self.model.metrics:
                    metric.reset_state()
            if step % self.interval == 0 and step < self.last_step:
                self._checkpoint(state, step)
        if state.saved_step != step:
            self._checkpoint(state, step)
        for hook in self.hooks:
            hook.on_train_end(state, step)
        return state.metrics

    def _checkpoint(self, state: TrainState, step: int) -> None:
        for hook in self.hooks:
            hook.on_checkpoint(state, step)


def default_hooks(
    config,
    *,
    ignore_restore_optimizer: bool = False,
    make_exporter: Callable | None = None,
) -> list[Hook]:
    """The hooks train_eval runs, in their order: files, checkpoints,
    evaluation, its record, progress, logs, summaries, exports."""
    train_config = config.train_config
    hooks: list[Hook] = [
        RunFilesHook(),
        CheckpointHook(
            keep_checkpoint_max=train_config.keep_checkpoint_max,
            fine_tune_checkpoint=train_config.fine_tune_checkpoint,
            ignore_restore_optimizer=ignore_restore_optimizer,
        ),
    ]
    # With an evaluator task in TF_CONFIG, it evaluates, records and
    # exports each checkpoint; the chief marks the last one for it.
    sidecar = read_tf_config().has_evaluator
    if config.eval_input_path and not sidecar:
        hooks += [EvaluationHook(config.eval_input_path), EvalResultHook()]
    hooks += [ProgressHook(), LoggingHook()]
    if train_config.use_tensorboard:
        hooks.append(TensorBoardHook())
    if make_exporter is not None and not sidecar:
        hooks.append(ExportHook(make_exporter))
    if sidecar:
        hooks.append(TrainingDoneHook())
    return hooks


def train_and_evaluate(
    config,
    *,
    strategy: tf.distribute.Strategy | None = None,
    ignore_restore_optimizer: bool = False,
    make_exporter: Callable | None = None,
    extra_hooks: Sequence[Hook] = (),
) -> dict[str, float]:
    """Trains config's model in config.model_dir; returns the last eval.

    `extra_hooks` run after the default ones.

    `make_exporter(run)` gives the exporter run after every evaluation
    as `exporter(model, step, metrics)`, or None (export_config's
    exporters, built with the run's feature set and specs). The chief
    owns model_dir meanwhile (ModelDirLock).
    """
    os.makedirs(config.model_dir, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    hooks = default_hooks(
        config,
        ignore_restore_optimizer=ignore_restore_optimizer,
        make_exporter=make_exporter,
    ) + list(extra_hooks)
    if strategy.extended.should_checkpoint:
        with ModelDirLock(config.model_dir):
            return _seeded_trainer(config, strategy, hooks).train()
    # Another worker of a cluster: checkpoint saves are collective, so it
    # saves too, into a scratch directory removed at the end; it restores
    # from model_dir (shared storage) and runs no writing hook.
    scratch = tempfile.mkdtemp(prefix="easymatch-worker-")
    try:
        trainer = _seeded_trainer(config, strategy, hooks, is_chief=False)
        trainer.checkpoint_dir = scratch
        return trainer.train()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _seeded_trainer(
    config, strategy: tf.distribute.Strategy, hooks, *, is_chief: bool = True
) -> Trainer:
    """The run seed (the chief's, on every worker; run_seed.py) seeds the
    model's initial weights and dropout, the shuffle and the samplers."""
    seed = shared_run_seed(strategy, config.model_dir)
    seed_keras(seed)
    run = RunContext(config, strategy=strategy, seed=seed)
    return Trainer(run, run.create_model(), hooks, is_chief=is_chief)
