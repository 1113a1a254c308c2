"""train_and_evaluate: the loop around MatchModel.train_step.

A custom loop over `strategy.run` rather than `model.fit`, so checkpoints,
evaluations and exports happen at exact global steps and a restarted run
continues from the last checkpoint's step with the data it had not seen.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import keras
import tensorflow as tf

from easymatch.config import save_pipeline_config
from easymatch.data.dataset import (
    Negatives,
    batch_transform,
    build_negatives,
    make_dataset,
    make_reader,
)
from easymatch.data.item_counts import load_or_count
from easymatch.errors import EasyMatchError, raise_tf_error
from easymatch.features import FeatureSet
from easymatch.features.builder import build_feature_set
from easymatch.models.builder import build_model
from easymatch.models.match_model import MatchModel
from easymatch.training import checkpoints
from easymatch.training.evaluate import Evaluator
from easymatch.training.model_dir_lock import ModelDirLock
from easymatch.training.non_finite import all_finite, check_finite, split_logs
from easymatch.training.optimizers import build_optimizer
from easymatch.training.sparse_optimizers import build_sparse_optimizer

logger = logging.getLogger("easymatch")


def create_model(
    config,
    feature_set: FeatureSet,
    strategy: tf.distribute.Strategy,
    negatives: Negatives | None = None,
) -> MatchModel:
    """Builds model, variables and optimizer slots under the strategy.

    ``negatives``: the sampler to build with; default: the eval sampler.
    """
    train_config = config.train_config
    item_counts = load_or_count(config, feature_set)
    with strategy.scope():
        model = build_model(config, feature_set, item_counts)
        model.compile(
            dense_optimizer=build_optimizer(
                train_config.dense_optimizer, "train_config.dense_optimizer"
            ),
            sparse_optimizer=build_sparse_optimizer(
                train_config.sparse_optimizer, "train_config.sparse_optimizer"
            ),
        )
        model(sample_features(config, feature_set, negatives), training=False)
        model.build_optimizers()
    return model


def sample_features(
    config, feature_set: FeatureSet, negatives: Negatives | None = None
) -> dict[str, tf.Tensor]:
    """One transformed training batch: variables are created from it."""
    if negatives is None:
        negatives = build_negatives(config, feature_set, training=False)
    reader = make_reader(
        config, feature_set, config.train_input_path, training=False
    )
    dataset = make_dataset(
        reader,
        batch_transform(config, feature_set),
        num_epochs=1,
        negatives=negatives,
    )
    try:
        features, _, _ = next(iter(dataset))
    except StopIteration:
        raise EasyMatchError(
            f"{config.train_input_path}: the training input has no rows"
        ) from None
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise_tf_error(error, config.train_input_path)
    return features


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


def restore_or_initialize(
    model: MatchModel,
    manager: tf.train.CheckpointManager,
    *,
    fine_tune_checkpoint: str,
    ignore_restore_optimizer: bool,
) -> int | None:
    """Restores the latest readable checkpoint; returns its step."""
    latest = checkpoints.latest_readable(manager)
    if latest:
        logger.info("resuming from %s", latest)
        checkpoints.restore(
            model, latest, with_optimizers=not ignore_restore_optimizer
        )
        step = checkpoints.checkpoint_step(latest)
        if ignore_restore_optimizer:
            model.optimizer.iterations.assign(step)
        return step
    if fine_tune_checkpoint:
        logger.info("initializing from %s", fine_tune_checkpoint)
        checkpoints.restore(model, fine_tune_checkpoint, with_optimizers=False)
    return None


def train_and_evaluate(
    config,
    *,
    strategy: tf.distribute.Strategy | None = None,
    ignore_restore_optimizer: bool = False,
    after_evaluation=None,
) -> dict[str, float]:
    """Trains config's model in config.model_dir; returns the last eval.

    `after_evaluation(model, step, metrics)` runs after every evaluation
    (the exporters hook in there). The chief owns model_dir meanwhile
    (ModelDirLock).
    """
    strategy = strategy or tf.distribute.get_strategy()
    model_dir = config.model_dir
    os.makedirs(model_dir, exist_ok=True)
    if not strategy.extended.should_checkpoint:
        return _train_and_evaluate(
            config, strategy, ignore_restore_optimizer, after_evaluation
        )
    with ModelDirLock(model_dir):
        return _train_and_evaluate(
            config, strategy, ignore_restore_optimizer, after_evaluation
        )


def _train_and_evaluate(
    config,
    strategy: tf.distribute.Strategy,
    ignore_restore_optimizer: bool,
    after_evaluation,
) -> dict[str, float]:
    model_dir = config.model_dir
    save_pipeline_config(config, os.path.join(model_dir, "pipeline.config"))
    feature_set = build_feature_set(config)
    transform = batch_transform(config, feature_set)
    steps_per_epoch = make_reader(
        config, feature_set, config.train_input_path, training=True
    ).num_batches()
    last_step = total_steps(config, steps_per_epoch)
    interval = save_interval(config, steps_per_epoch)

    negatives = build_negatives(config, feature_set, training=True)
    model = create_model(config, feature_set, strategy, negatives)
    manager = checkpoints.make_manager(
        checkpoints.make_checkpoint(model),
        model_dir,
        config.train_config.keep_checkpoint_max,
    )
    saved_step = restore_or_initialize(
        model,
        manager,
        fine_tune_checkpoint=config.train_config.fine_tune_checkpoint,
        ignore_restore_optimizer=ignore_restore_optimizer,
    )
    start_step = int(model.optimizer.iterations.numpy())
    num_epochs = (
        None
        if config.train_config.num_steps
        else (config.train_config.num_epochs)
    )

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        reader = make_reader(
            config,
            feature_set,
            config.train_input_path,
            training=True,
            batch_size=context.get_per_replica_batch_size(
                config.data_config.batch_size
            ),
        )
        # Each step takes one batch per replica: start_step · replicas of
        # the stream before sharding, start_step · (local replicas) of this
        # pipeline's shard.
        per_pipeline = context.num_replicas_in_sync // max(
            context.num_input_pipelines, 1
        )
        return make_dataset(
            reader,
            transform,
            num_epochs=num_epochs,
            skip_batches=start_step * context.num_replicas_in_sync,
            input_context=context,
            negatives=negatives,
            first_step=start_step * per_pipeline,
        )

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    train_steps = make_train_steps(model, strategy)

    writer = (
        tf.summary.create_file_writer(os.path.join(model_dir, "train"))
        if config.train_config.use_tensorboard
        else tf.summary.create_noop_writer()
    )
    eval_writer = (
        tf.summary.create_file_writer(os.path.join(model_dir, "eval"))
        if config.train_config.use_tensorboard
        else tf.summary.create_noop_writer()
    )
    log_every = max(config.train_config.log_step_count_steps, 1)
    interactive = sys.stdout.isatty()
    progress = keras.utils.Progbar(
        last_step, unit_name="step", verbose=1 if interactive else 0
    )
    evaluator = Evaluator(model, config, feature_set, strategy)
    metrics: dict[str, float] = {}
    step = start_step
    tick, tick_step = time.perf_counter(), step

    def run_evaluation() -> None:
        nonlocal metrics, saved_step
        manager.save(checkpoint_number=step)
        saved_step = step
        if not config.eval_input_path:
            return
        metrics = evaluator(config.eval_input_path)
        checkpoints.append_eval_result(model_dir, step, metrics)
        with eval_writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(name, value)
        logger.info("eval at step %d: %s", step, metrics)
        if after_evaluation is not None:
            after_evaluation(model, step, metrics)

    per_call = max(config.train_config.steps_per_execution, 1)
    if strategy.num_replicas_in_sync > 1 and per_call > 1:
        # In a tf.while_loop, the replicas' all-gathers of differently
        # sized id sets (row-sparse updates) get mismatched collective
        # instances in TF 2.20; one step per call keeps them in step.
        logger.info("steps_per_execution is 1 with several replicas")
        per_call = 1
    while step < last_step:
        # A call never runs past a step that logs, saves or ends training.
        count = min(
            per_call,
            last_step - step,
            log_every - step % log_every,
            interval - step % interval,
        )
        try:
            done, logs = train_steps(iterator, tf.constant(count))
        except (StopIteration, tf.errors.OutOfRangeError):
            logger.warning("training input ended at step %d", step)
            break
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise_tf_error(e, config.train_input_path)
        step += int(done)
        logs, finite, loss_terms = split_logs(logs, strategy)
        check_finite(model, finite, loss_terms, step, saved_step)
        progress.update(step)
        if step % log_every == 0 or step == last_step:
            values = {
                name: float(strategy.experimental_local_results(value)[0])
                for name, value in logs.items()
            }
            now = time.perf_counter()
            values["steps_per_sec"] = (step - tick_step) / (now - tick)
            tick, tick_step = now, step
            values["learning_rate"] = float(
                keras.ops.convert_to_numpy(model.optimizer.learning_rate)
            )
            with writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(name, value)
            if interactive:
                # Keep the bar: the log line starts below it.
                sys.stdout.write("\n")
            logger.info(
                "step %d/%d: %s",
                step,
                last_step,
                " ".join(f"{k}={v:.6g}" for k, v in values.items()),
            )
            for metric in model.metrics:
                metric.reset_state()
        if step % interval == 0 and step < last_step:
            run_evaluation()
    if saved_step != step:
        run_evaluation()
    elif config.eval_input_path:
        metrics = evaluator(config.eval_input_path)
    writer.close()
    eval_writer.close()
    return metrics
