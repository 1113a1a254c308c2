"""Specs → tf.data of (features, side_inputs, label, sample_weight).

With a sampler, its negatives join each batch's raw item-side columns
before the feature transforms (SPEC §3.8), so item features have
B + N (+ n_hard) rows. `side_inputs` (keys in `easymatch.side_inputs`)
holds what the loss needs besides the features: the hard negatives'
indices (hard samplers), the positives' item ids, the negatives' and
their log sampling probability, the last three only when a model option
reads them. What to read comes from the run's specs (`DataSpec`,
`RetrievalSpec`), never from the config.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass

import tensorflow as tf

from easymatch import side_inputs as keys
from easymatch.data import samplers
from easymatch.data.convert import STRING
from easymatch.data.reader import ColumnSpec, TableReader
from easymatch.features import FeatureSet, IdFeature
from easymatch.features.checks import check
from easymatch.specs import DataSpec, RunSpecs

# Item ids reach the model as int64 FarmHash fingerprints, so it compares
# and hashes them without string tensors; 63 bits make collisions among a
# batch's candidates negligible.
ID_HASH_BUCKETS = (1 << 63) - 1


@dataclass(frozen=True)
class Negatives:
    """A sampler and the item-side columns (name → kind) it extends."""

    sampler: samplers.Sampler
    item_columns: dict[str, str]

    def for_stream(self, stream: int) -> Negatives:
        """Worker ``stream``'s draws (see Sampler.for_stream)."""
        return Negatives(self.sampler.for_stream(stream), self.item_columns)

    def __call__(
        self, dataset: tf.data.Dataset, first_step: int
    ) -> tf.data.Dataset:
        return samplers.with_negatives(
            dataset, self.sampler, self.item_columns, first_step
        )


def build_negatives(
    sampler: samplers.Sampler | None, data: DataSpec, feature_set: FeatureSet
) -> Negatives | None:
    """`sampler` (`samplers.build_sampler`) and the item-side columns it
    extends, or None without a sampler."""
    if sampler is None:
        return None
    kinds = feature_columns(data, feature_set)
    return Negatives(
        sampler,
        {
            feature.input_column: kinds[feature.input_column]
            for feature in feature_set.features
            if feature.side == "item"
        },
    )


def feature_columns(data: DataSpec, feature_set: FeatureSet) -> dict[str, str]:
    """Column → kind ("string" | "float") of the features and the ids."""
    kinds = feature_set.input_columns()
    # Ids are matched as text, like the sampler tables' ids; a feature that
    # reads the column as a number parses the text back.
    for name in data.id_columns:
        kinds[name] = STRING
    return kinds


def int64_candidates(data: DataSpec, feature_set: FeatureSet) -> set[str]:
    """Text columns that may reach tf.data as int64 (see TableReader).

    Only columns that plain id features alone read: they take integers
    as well as text. Sequence, weighted and raw features parse text; the
    sampler and the loss match ids as text; a sampler's negatives extend
    the item columns with text from its tables.
    """
    readers: dict[str, list] = {}
    for feature in feature_set.features:
        readers.setdefault(feature.input_column, []).append(feature)
    candidates = {
        column
        for column, features in readers.items()
        if all(type(f) is IdFeature and not f.weighted for f in features)
    }
    candidates -= set(data.id_columns)
    if data.has_sampler:
        candidates -= {
            f.input_column for f in feature_set.features if f.side == "item"
        }
    return candidates


def make_reader(
    data: DataSpec,
    feature_set: FeatureSet,
    input_path: str,
    *,
    training: bool,
    batch_size: int | None = None,
    columns: dict[str, str] | None = None,
    shard: tuple[int, int] = (0, 1),
    seed: int = 0,
) -> TableReader:
    """A reader of every column the features, label, weight and ids need,
    or of ``columns`` (name → kind) only; of shard (index, count) of the
    rows only (one worker's share, see data/shards.py); a training reader
    with ``data_config.shuffle`` shuffles by ``seed``."""
    kinds = columns
    if kinds is None:
        kinds = feature_columns(data, feature_set)
        for name in [data.label_field, data.sample_weight_field]:
            if name is not None:
                kinds.setdefault(name, "float")
    return TableReader(
        input_path,
        data.dataset_type,
        [ColumnSpec(name, kind) for name, kind in kinds.items()],
        batch_size=batch_size or data.batch_size_for(training),
        drop_remainder=data.drop_remainder,
        shuffle=data.shuffle and training,
        shuffle_buffer_size=data.shuffle_buffer_size,
        csv_fields=list(data.csv_fields),
        csv_delimiter=data.csv_delimiter,
        csv_with_header=data.csv_with_header,
        num_workers=data.num_workers,
        int64_candidates=int64_candidates(data, feature_set),
        shard=shard,
        seed=seed,
    )


def hash_ids(ids: tf.Tensor) -> tf.Tensor:
    """Text ids → int64 fingerprints in [0, 2^63 - 1)."""
    return tf.strings.to_hash_bucket_fast(ids, ID_HASH_BUCKETS)


def batch_transform(
    specs: RunSpecs, feature_set: FeatureSet
) -> Callable[[dict[str, tf.Tensor]], tuple]:
    """Raw columns → (features, side_inputs, label, sample_weight) for one
    batch.

    The transform's `single_valued` names columns known to hold one value
    per row, which id features need not split (see `make_dataset`).
    """
    label_field = specs.data.label_field
    weight_field = specs.data.sample_weight_field
    retrieval = specs.retrieval
    item_id = retrieval.item_id_column

    def transform(
        columns: dict[str, tf.Tensor], single_valued: Collection[str] = ()
    ) -> tuple:
        label = columns[label_field]
        weight = (
            _present_weights(columns[weight_field], weight_field)
            if weight_field is not None
            else tf.ones_like(label)
        )
        features = feature_set.transform(columns, single_valued)
        side = {}
        if keys.HARD_NEG_INDICES in columns:
            side[keys.HARD_NEG_INDICES] = columns[keys.HARD_NEG_INDICES]
        if item_id is not None:
            # An item-side id column also holds the negatives' ids.
            positives = columns[item_id][: tf.shape(label)[0]]
            side[keys.ITEM_ID] = hash_ids(positives)
        if retrieval.remove_accidental_hits and keys.NEG_ITEM_ID in columns:
            side[keys.NEG_ITEM_ID] = hash_ids(columns[keys.NEG_ITEM_ID])
        if retrieval.logq_correction and keys.NEG_LOG_Q in columns:
            side[keys.NEG_LOG_Q] = columns[keys.NEG_LOG_Q]
        return features, side, label, weight

    # Feature transforms branch on their configuration only, never on a
    # tensor, so autograph has nothing to convert; converting every
    # feature's code anyway took most of a pipeline's start-up time.
    return tf.autograph.experimental.do_not_convert(transform)


def _present_weights(weights: tf.Tensor, column: str) -> tf.Tensor:
    """The reader rejects NaN and infinities with their row; a null reads
    as NaN, and a sample weight has no default to take its place."""
    present = ~tf.math.is_nan(weights)
    null_check = check(
        tf.reduce_all(present),
        f'sample weight column "{column}": a row has no value (null), '
        "at row {} of a batch",
        lambda: [tf.where(~present)[0, 0] + 1],
    )
    with tf.control_dependencies([null_check]):
        return tf.identity(weights)


def input_shard(context: tf.distribute.InputContext) -> tuple[int, int]:
    """(index, count) of the input pipeline: what its worker reads."""
    return context.input_pipeline_id, max(context.num_input_pipelines, 1)


def make_dataset(
    reader: TableReader,
    transform: Callable,
    *,
    num_epochs: int | None,
    skip_batches: int = 0,
    negatives: Negatives | None = None,
    first_step: int = 0,
) -> tf.data.Dataset:
    """Batches for one input pipeline (one worker) of a strategy; the
    reader reads that worker's shard (`input_shard`).

    ``skip_batches`` counts batches of the reader's stream;
    ``first_step`` is the sampler step of this pipeline's first batch: the
    number of batches it delivered before, so that a resumed run draws the
    negatives an uninterrupted one would have.
    """
    dataset = reader.dataset(num_epochs=num_epochs, skip_batches=skip_batches)
    single_valued = reader.integer_columns()
    if negatives is not None:
        dataset = negatives(dataset, first_step)
        # Negatives' values come from the sampler's tables, not the files.
        single_valued -= set(negatives.item_columns)
    dataset = dataset.map(
        functools.partial(transform, single_valued=single_valued),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
