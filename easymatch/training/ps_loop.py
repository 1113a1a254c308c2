"""Parameter-server training: the chief's step loop on ClusterCoordinator.

Under a TF_CONFIG with a `ps` job the chief runs this loop; `worker` and
`ps` tasks only serve (strategies.serve). Variables live on the ps tasks:
tables of at least `train_config.shard_min_bytes` as ShardedVariables
(layers/sharded_tables.py) updated by ShardedRowSparse, every other
variable whole on one ps, updated by its Keras optimizer. Each step is a
closure the coordinator runs on whichever worker is free, asynchronously;
the loop joins them at logging and checkpoint steps. A worker that fails
has its closures rerun on another one (ClusterCoordinator's recovery).

Each worker reads its own share of the input and trains on it: a step
takes its worker's next batch from a per-worker dataset (ps_input.py).
Checkpoints, evaluation, summaries and exports happen on the chief
through the same hooks as in one process (loop.py); exports come from a
one-process copy of the model restored from the sharded checkpoint, so
the SavedModels are unsharded.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from easymatch import checkpoint
from easymatch.checkpoint.table_slots import Table, tables_of
from easymatch.errors import ConfigError
from easymatch.export.export_model import load_model
from easymatch.layers import sharded_tables
from easymatch.models.match_model import FINITE, LOSS_TERMS, MatchModel
from easymatch.run_context import RunContext
from easymatch.training.cluster import Cluster, ClusterError
from easymatch.training.hooks import Hook, TrainState
from easymatch.training.loop import Trainer, default_hooks
from easymatch.training.model_dir_lock import ModelDirLock
from easymatch.training.non_finite import check_finite
from easymatch.training.ps_input import WorkerInput, worker_failure
from easymatch.training.run_seed import run_seed, seed_keras
from easymatch.training.sharded_sparse import (
    ShardedRowSparse,
    ShardedVariable,
)
from easymatch.training.sparse_optimizers import _RowSparseOptimizer
from easymatch.training.strategies import peak_rss_mb

logger = logging.getLogger("easymatch")

Coordinator = tf.distribute.experimental.coordinator.ClusterCoordinator


def table_sharding(
    run: RunContext, num_ps: int
) -> sharded_tables.TableSharding:
    """train_config.shard_min_bytes, or by default one ps task's fair share
    of all embedding table bytes (sharded_tables.default_min_bytes)."""
    min_bytes = run.config.train_config.shard_min_bytes
    if not min_bytes:
        # float32 tables, by table name (features may share one).
        tables = {
            spec.table.name: spec.table.num_embeddings
            * spec.table.embedding_dim
            * 4
            for spec in run.feature_set.specs()
            if spec.table is not None
        }
        min_bytes = sharded_tables.default_min_bytes(
            list(tables.values()), num_ps
        )
    return sharded_tables.TableSharding(num_ps, min_bytes)


def _sharded_tables(model: MatchModel) -> list[Table]:
    """Every sharded table of the model once, in layer order (breadth
    first: their optimizer slots' order in checkpoints)."""
    return [
        table
        for table in tables_of(model, breadth_first=True)
        if isinstance(table.variable, ShardedVariable)
    ]


def sharded_tables_of(model: MatchModel) -> dict[str, tf.Variable]:
    """Every sharded table of the model by name, in layer order."""
    return {table.name: table.variable for table in _sharded_tables(model)}


def create_sharded_model(
    run: RunContext, strategy: tf.distribute.Strategy, num_ps: int
) -> MatchModel:
    """The model under PSS, large tables sharded, with `sharded_sparse`."""
    with sharded_tables.sharding(table_sharding(run, num_ps)):
        model = run.create_model(strategy)
    tables = _sharded_tables(model)
    optimizer = model.sparse_optimizer
    if tables and not isinstance(optimizer, _RowSparseOptimizer):
        raise ConfigError(
            "train_config.sparse_optimizer: parameter-server training "
            "updates sharded tables with a row-sparse optimizer; set one"
        )
    with strategy.scope():
        model.sharded_sparse = ShardedRowSparse(
            optimizer,
            [table.variable for table in tables],
            paths=[table.path for table in tables],
        )
    for name, _, table in tables:
        logger.info(
            "table %s %s sharded over %d ps: %s",
            name,
            table.shape.as_list(),
            len(table.variables),
            [v.shape[0] for v in table.variables],
        )
    return model


def make_ps_step(model: MatchModel, strategy: tf.distribute.Strategy):
    """`step(batch, global_step)`: one training step on a worker; returns
    the step's loss (cross entropy + regularization) and the finiteness
    flags and loss terms of MatchModel's guard (non_finite.py)."""
    sharded: ShardedRowSparse = model.sharded_sparse
    optimizers = [model.optimizer]
    if model.sparse_optimizer is not None:
        optimizers.append(model.sparse_optimizer)

    def replica_step(batch, global_step):
        # The chief numbers the steps: concurrent steps would race on an
        # assign_add, and Adam's bias correction and learning rate
        # schedules read this count.
        for optimizer in optimizers:
            optimizer.iterations.assign(global_step)
        shards = sharded.shard_variables()
        sparse, dense = model.split_variables()
        if model.sparse_optimizer is None:
            sparse, dense = [], sparse + dense
        with tf.GradientTape() as tape:
            # The task counts the batch's items in the frequency estimator
            # first; the step's loss is returned, not tracked.
            features, regularization, outputs = model.task_step(
                batch, training=True, compute_metrics=False
            )
        loss = outputs["loss"]
        gradients = model.clip_gradients(
            tape.gradient(loss, shards + sparse + dense)
        )
        tables = sharded.per_table(gradients[: len(shards)])
        if shards:
            sharded.apply(
                gradients[: len(shards)], model.sparse_optimizer.learning_rate
            )
        gradients = gradients[len(shards) :]
        # In finite_check_names' order: the sharded tables', then the
        # Keras variables' gradients.
        checks = model.finite_checks(
            outputs["cross_entropy"],
            regularization,
            tables + gradients,
            features,
        )
        if sparse:
            model.sparse_optimizer.apply(gradients[: len(sparse)], sparse)
        model.optimizer.apply(gradients[len(sparse) :], dense)
        return {
            "loss": outputs["cross_entropy"] + regularization,
            **checks,
        }

    @tf.function(reduce_retracing=True)
    def step(batch, global_step):
        return strategy.run(replica_step, args=(batch, global_step))

    return step


def make_worker_step(
    model: MatchModel, strategy: tf.distribute.Strategy, inputs: WorkerInput
):
    """`step(iterator, global_step)`: the PS step on the next batch of the
    worker's own input, whose count it advances."""
    batch_step = make_ps_step(model, strategy)

    @tf.function(reduce_retracing=True)
    def step(iterator, global_step):
        tag, batch = next(iterator)
        outputs = batch_step(batch, global_step)
        inputs.record(tag)
        return outputs

    return step


class ParameterServerTrainer(Trainer):
    """The step loop of loop.Trainer, each step scheduled on a worker."""

    def __init__(
        self,
        run: RunContext,
        model: MatchModel,
        hooks: Sequence[Hook],
        strategy: tf.distribute.Strategy,
        cluster: Cluster,
    ) -> None:
        super().__init__(run, model, hooks)
        self.strategy = strategy
        self.cluster = cluster
        self.coordinator = Coordinator(strategy)
        self.inputs = model.ps_input = WorkerInput(
            run, strategy, len(cluster.jobs["worker"])
        )
        self.step_fn = make_worker_step(model, strategy, self.inputs)

    def _sync(self, step: int, pending: list, state: TrainState) -> list:
        """Waits for every scheduled step, stops at the first one that was
        not finite (before any checkpoint of it), sets the step counters
        to `step`; returns the steps' losses."""
        self.coordinator.join()
        losses = []
        for number, result in enumerate(pending, step - len(pending) + 1):
            logs = result.fetch()
            check_finite(
                self.model,
                np.asarray(logs[FINITE]),
                np.asarray(logs[LOSS_TERMS]),
                number,
                state.saved_step,
            )
            losses.append(float(logs["loss"]))
        pending.clear()
        self.model.optimizer.iterations.assign(step)
        if self.model.sparse_optimizer is not None:
            self.model.sparse_optimizer.iterations.assign(step)
        return losses

    def train(self) -> dict[str, float]:
        state = TrainState(self.run, self.model, self.last_step, self.hooks)
        try:
            return self._train(state)
        except (tf.errors.UnavailableError, tf.errors.AbortedError) as error:
            raise self._lost(error, state) from None
        except tf.errors.InvalidArgumentError as error:
            failure = worker_failure(error)
            if failure is None:
                raise
            raise failure from None

    def _lost(self, error: tf.errors.OpError, state: TrainState) -> Exception:
        """One line naming the task that went away (a ps: a worker's
        closures are rerun elsewhere and do not end up here)."""
        found = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", str(error))
        task = "a task"
        if found:
            job, index = found.group(1), int(found.group(2))
            task = f"{job} {index} ({self.cluster.address(job, index)})"
        resume = (
            f"the checkpoint of step {state.saved_step}"
            if state.saved_step is not None
            else "the start (no checkpoint yet)"
        )
        return ClusterError(
            f"TF_CONFIG: {task} is gone; restart every task to resume "
            f"from {resume}"
        )

    def _train(self, state: TrainState) -> dict[str, float]:
        for hook in self.hooks:
            hook.on_train_begin(state)
        step = state.start_step = int(self.model.optimizer.iterations.numpy())
        self.inputs.start_at(step)
        iterator = self.inputs.iterator(self.coordinator)
        pending: list = []
        losses: list[float] = []
        tick, tick_step = time.perf_counter(), step
        while step < self.last_step:
            pending.append(
                self.coordinator.schedule(
                    self.step_fn,
                    args=(iterator, tf.constant(step, tf.int64)),
                )
            )
            step += 1
            logging_step = step % self.log_every == 0 or step == self.last_step
            saving = step % self.interval == 0
            values = None
            if logging_step or saving:
                losses += self._sync(step, pending, state)
            if logging_step:
                now = time.perf_counter()
                values = {
                    "loss": float(np.mean(losses)),
                    "steps_per_sec": (step - tick_step) / (now - tick),
                    "learning_rate": float(self.model.optimizer.learning_rate),
                }
                losses, tick, tick_step = [], now, step
            for hook in self.hooks:
                hook.after_steps(state, step, values)
            if saving and step < self.last_step:
                self._checkpoint(state, step)
        self._sync(step, pending, state)
        if state.saved_step != step:
            self._checkpoint(state, step)
        for hook in self.hooks:
            hook.on_train_end(state, step)
        return state.metrics


class UnshardedExport:
    """The exporter of PS runs: exports a one-process model restored
    from the checkpoint just evaluated (unsharded tables)."""

    def __init__(self, export, run: RunContext) -> None:
        self.export = export
        self.run = run

    def __call__(self, model: MatchModel, step: int, metrics: dict) -> None:
        config = self.run.config
        path = checkpoint.checkpoint_path(config.model_dir, step)
        # Outside the strategy's scope: every variable is local and whole.
        self.export(load_model(self.run, path), step, metrics)


def unsharded(make_exporter: Callable) -> Callable:
    """`make_exporter(run)` whose exporter gets the unsharded model."""

    def make(run: RunContext) -> UnshardedExport | None:
        export = make_exporter(run)
        return UnshardedExport(export, run) if export is not None else None

    return make


def train_and_evaluate_ps(
    config,
    *,
    strategy: tf.distribute.Strategy,
    cluster: Cluster,
    ignore_restore_optimizer: bool = False,
    make_exporter: Callable | None = None,
    extra_hooks: Sequence[Hook] = (),
) -> dict[str, float]:
    """train_and_evaluate (loop.py) for the chief of a PS cluster."""
    os.makedirs(config.model_dir, exist_ok=True)
    hooks = default_hooks(
        config,
        ignore_restore_optimizer=ignore_restore_optimizer,
        make_exporter=unsharded(make_exporter) if make_exporter else None,
    ) + list(extra_hooks)
    with ModelDirLock(config.model_dir):
        # Evaluation and hooks run on the chief, as in one process; each
        # worker reads its input from the chief's run seed (run_seed.py,
        # ps_input.py); the model lives on the cluster.
        seed = run_seed(config.model_dir, record=True)
        seed_keras(seed)
        run = RunContext(config, seed=seed)
        model = create_sharded_model(run, strategy, cluster.num_ps)
        metrics = ParameterServerTrainer(
            run, model, hooks, strategy, cluster
        ).train()
    logger.info("chief: trained; peak RSS %.1f MB", peak_rss_mb())
    return metrics
