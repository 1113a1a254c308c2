"""One run's shared pieces, built once: specs, features, samplers, readers.

The trainer, the evaluator, the `eval` CLI and the exporter take a
RunContext instead of each rebuilding the feature set, the specs and the
samplers from the config. Models are built from the specs alone (every
variable's shape is known from them), so evaluation and export read no
training data.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from easymatch.data import samplers
from easymatch.data.dataset import (
    Negatives,
    batch_transform,
    build_negatives,
    make_reader,
)
from easymatch.data.item_counts import load_or_count
from easymatch.data.reader import TableReader
from easymatch.features import FeatureSet
from easymatch.features.builder import build_feature_set
from easymatch.models.builder import build_model
from easymatch.models.match_model import MatchModel
from easymatch.specs.derive import derive_specs
from easymatch.training.optimizers import build_optimizer
from easymatch.training.run_seed import strategy_workers
from easymatch.training.sparse_optimizers import build_sparse_optimizer


class RunContext:
    """What a train, eval or export run derives from its config, once:
    the feature set, the specs (`easymatch.specs`), the samplers."""

    def __init__(
        self,
        config,
        *,
        strategy: tf.distribute.Strategy | None = None,
        feature_set: FeatureSet | None = None,
        seed: int = 0,
    ) -> None:
        self.config = config
        # The run seed (training/run_seed.py): the training reader's
        # shuffle and the training sampler's streams; 0 for eval, export.
        self.seed = seed
        self.strategy = strategy or tf.distribute.get_strategy()
        self.feature_set = feature_set or build_feature_set(config)
        self.specs = derive_specs(config, self.feature_set.specs())
        self._negatives: dict[bool, Negatives | None] = {}

    @functools.cached_property
    def transform(self):
        """Raw columns → (features, side_inputs, label, sample_weight)."""
        return batch_transform(self.specs, self.feature_set)

    def negatives(self, *, training: bool) -> Negatives | None:
        """The train or eval sampler (its tables read once), or None."""
        if training not in self._negatives:
            # Evaluation draws from seed 0: its metrics depend on the
            # checkpoint, not on the run that trained it.
            sampler = samplers.build_sampler(
                self.config, training, seed=self.seed if training else 0
            )
            self._negatives[training] = build_negatives(
                sampler, self.specs.data, self.feature_set
            )
        return self._negatives[training]

    def reader(
        self,
        input_path: str,
        *,
        training: bool,
        batch_size: int | None = None,
        shard: tuple[int, int] = (0, 1),
    ) -> TableReader:
        return make_reader(
            self.specs.data,
            self.feature_set,
            input_path,
            training=training,
            batch_size=batch_size,
            shard=shard,
            seed=self.seed,
        )

    @property
    def num_workers(self) -> int:
        """Workers of the strategy, each with one input pipeline."""
        return strategy_workers(self.strategy)

    def create_model(
        self, strategy: tf.distribute.Strategy | None = None
    ) -> MatchModel:
        """The model, its variables and optimizer slots, built under
        `strategy` (default: the run's) without reading any data.

        The layers create every variable when constructed: their shapes
        follow from the specs, not from a batch. logQ's exact item counts
        come from model_dir (counted there on the first run).
        """
        train_config = self.config.train_config
        item_counts = load_or_count(
            self.specs,
            self.feature_set,
            train_input_path=self.config.train_input_path,
            model_dir=self.config.model_dir,
        )
        with (strategy or self.strategy).scope():
            model = build_model(self.specs.model, item_counts)
            model.compile(
                dense_optimizer=build_optimizer(
                    train_config.dense_optimizer,
                    "train_config.dense_optimizer",
                ),
                sparse_optimizer=build_sparse_optimizer(
                    train_config.sparse_optimizer,
                    "train_config.sparse_optimizer",
                ),
            )
            model.build_optimizers()
        return model
