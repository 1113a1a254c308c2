"""Evaluation: loss and Recall@K over an eval input, with or without a fit."""

from __future__ import annotations

import logging

import tensorflow as tf

from easymatch.data.dataset import (
    Negatives,
    batch_transform,
    build_negatives,
    make_dataset,
    make_reader,
)
from easymatch.errors import DataError, raise_tf_error
from easymatch.features import FeatureSet
from easymatch.models.match_model import MatchModel

logger = logging.getLogger("easymatch.eval")


def eval_distributed_dataset(
    config,
    feature_set: FeatureSet,
    strategy: tf.distribute.Strategy,
    input_path: str,
    negatives: Negatives | None = None,
):
    """Eval batches; every evaluation draws the same negatives."""
    transform = batch_transform(config, feature_set)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        reader = make_reader(config, feature_set, input_path, training=False)
        return make_dataset(
            reader,
            transform,
            num_epochs=1,
            input_context=context,
            negatives=negatives,
        )

    return strategy.distribute_datasets_from_function(dataset_fn)


class Evaluator:
    """Evaluates a model repeatedly, tracing its test step only once."""

    def __init__(
        self,
        model: MatchModel,
        config,
        feature_set: FeatureSet,
        strategy: tf.distribute.Strategy,
    ) -> None:
        self.model = model
        self.config = config
        self.feature_set = feature_set
        self.strategy = strategy
        # num_eval_sample when set (SPEC §3.8); tables are read once.
        self.negatives = build_negatives(config, feature_set, training=False)

        @tf.function
        def test_step(iterator):
            return strategy.run(model.test_step, args=(next(iterator),))

        self._test_step = test_step

    def __call__(self, input_path: str) -> dict[str, float]:
        """Metrics over the input (eval_config.num_steps batches if set)."""
        dataset = eval_distributed_dataset(
            self.config,
            self.feature_set,
            self.strategy,
            input_path,
            self.negatives,
        )
        max_steps = self.config.eval_config.num_steps or None
        for metric in self.model.metrics:
            metric.reset_state()
        logs: dict = {}
        iterator = iter(dataset)
        step = 0
        # TorchEasyRec logs eval progress every log_step_count_steps.
        log_every = max(self.config.eval_config.log_step_count_steps, 1)
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
        return {
            name: float(self.strategy.experimental_local_results(value)[0])
            for name, value in logs.items()
        }
