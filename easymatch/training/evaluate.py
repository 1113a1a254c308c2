"""Evaluation: loss and Recall@K over an eval input, with or without a fit."""

from __future__ import annotations

import logging

import tensorflow as tf

from easymatch.data.dataset import input_shard, make_dataset
from easymatch.errors import DataError, raise_tf_error
from easymatch.models.match_model import MatchModel
from easymatch.run_context import RunContext

logger = logging.getLogger("easymatch.eval")


def eval_distributed_dataset(run: RunContext, input_path: str):
    """Eval batches; every evaluation draws the same negatives."""
    negatives = run.negatives(training=False)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_dataset(
            run.reader(input_path, training=False, shard=input_shard(context)),
            run.transform,
            num_epochs=1,
            negatives=negatives,
        )

    return run.strategy.distribute_datasets_from_function(dataset_fn)


class Evaluator:
    """Evaluates a model repeatedly, tracing its test step only once.

    Uses the run's eval sampler: num_eval_sample when set (SPEC §3.8).
    """

    def __init__(self, model: MatchModel, run: RunContext) -> None:
        self.model = model
        self.run = run
        strategy = run.strategy

        @tf.function
        def test_step(iterator):
            return strategy.run(model.test_step, args=(next(iterator),))

        self._test_step = test_step

    def __call__(self, input_path: str) -> dict[str, float]:
        """Metrics over the input (eval_config.num_steps batches if set)."""
        dataset = eval_distributed_dataset(self.run, input_path)
        max_steps = self.run.config.eval_config.num_steps or None
        for metric in self.model.metrics:
            metric.reset_state()
        logs: dict = {}
        iterator = iter(dataset)
        step = 0
        # TorchEasyRec logs eval progress every log_step_count_steps.
        log_every = max(self.run.config.eval_config.log_step_count_steps, 1)
        try:
            while max_steps is None or step < max_steps:
                logs = self._test_step(iterator)
                step += 1
                if step % log_every == 0:
                    logger.info("eval step %d", step)
        except tf.errors.OutOfRangeError:
            pass
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as e:
            raise_tf_error(e, input_path)
        if not logs:
            raise DataError(f"{input_path}: the eval input has no rows")
        # Read outside the replicas, the metrics' sum-aggregated counters
        # add up over every replica and worker.
        metrics = {metric.name: metric for metric in self.model.metrics}
        return {name: float(metrics[name].result()) for name in logs}
