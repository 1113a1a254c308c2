"""Config → tf.data of (features, side_inputs, label, sample_weight).

With a sampler, its negatives join each batch's raw item-side columns
before the feature transforms (SPEC §3.8), so item features have
B + N (+ n_hard) rows. `side_inputs` (keys in `easymatch.side_inputs`)
holds what the loss needs besides the features: the hard negatives'
indices (hard samplers), the positives' item ids, the negatives' and
their log sampling probability, the last three only when a model option
reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass

import tensorflow as tf

from easymatch import side_inputs as keys
from easymatch.config import sampler_config
from easymatch.data import samplers
from easymatch.data.convert import STRING
from easymatch.data.reader import ColumnSpec, TableReader
from easymatch.features import FeatureSet, IdFeature
from easymatch.features.checks import check
from easymatch.protos import data_pb2
from easymatch.side_inputs import needs_item_ids

DATASET_TYPES = {"ParquetDataset": "parquet", "CsvDataset": "csv"}
# Item ids reach the model as int64 FarmHash fingerprints, so it compares
# and hashes them without string tensors; 63 bits make collisions among a
# batch's candidates negligible.
ID_HASH_BUCKETS = (1 << 63) - 1


@dataclass(frozen=True)
class Negatives:
    """A sampler and the item-side columns (name → kind) it extends."""

    sampler: samplers.Sampler
    item_columns: dict[str, str]

    def for_stream(self, stream: int, seed: int | None = None) -> Negatives:
        """Worker ``stream``'s draws (see Sampler.for_stream)."""
        return Negatives(
            self.sampler.for_stream(stream, seed), self.item_columns
        )

    def __call__(
        self, dataset: tf.data.Dataset, first_step: int
    ) -> tf.data.Dataset:
        return samplers.with_negatives(
            dataset, self.sampler, self.item_columns, first_step
        )


def build_negatives(
    config, feature_set: FeatureSet, *, training: bool, seed: int | None = None
) -> Negatives | None:
    """The configured sampler (train or eval sample count), or None."""
    sampler = samplers.build_sampler(config, training, seed)
    if sampler is None:
        return None
    kinds = feature_columns(config, feature_set)
    return Negatives(
        sampler,
        {
            feature.input_column: kinds[feature.input_column]
            for feature in feature_set.features
            if feature.side == "item"
        },
    )


def _model_options(config):
    model_config = config.model_config
    return getattr(model_config, model_config.WhichOneof("model"))


def item_id_column(config) -> str | None:
    """The column of the positives' item ids, if a model option reads it."""
    options = _model_options(config)
    if not needs_item_ids(
        in_batch_negative=options.in_batch_negative,
        mixed_negatives=options.mixed_negatives,
        logq_correction=options.logq_correction,
        remove_accidental_hits=options.remove_accidental_hits,
    ):
        return None
    sampler = sampler_config(config.data_config)
    return options.item_id_field or sampler.item_id_field


def id_columns(config) -> list[str]:
    """Columns the sampler and the loss match ids in, read as text."""
    names = []
    sampler = sampler_config(config.data_config)
    if sampler is not None:
        names.append(sampler.item_id_field)
        if hasattr(sampler, "user_id_field"):
            names.append(sampler.user_id_field)
    item_id = item_id_column(config)
    if item_id is not None:
        names.append(item_id)
    return names


def feature_columns(config, feature_set: FeatureSet) -> dict[str, str]:
    """Column → kind ("string" | "float") of the features and the ids."""
    kinds = feature_set.input_columns()
    # Ids are matched as text, like the sampler tables' ids; a feature that
    # reads the column as a number parses the text back.
    for name in id_columns(config):
        kinds[name] = STRING
    return kinds


def int64_candidates(config, feature_set: FeatureSet) -> set[str]:
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
    candidates -= set(id_columns(config))
    if sampler_config(config.data_config) is not None:
        candidates -= {
            f.input_column for f in feature_set.features if f.side == "item"
        }
    return candidates


def make_reader(
    config,
    feature_set: FeatureSet,
    input_path: str,
    *,
    training: bool,
    batch_size: int | None = None,
    columns: dict[str, str] | None = None,
    shard: tuple[int, int] = (0, 1),
) -> TableReader:
    """A reader of every column the features, label, weight and ids need,
    or of ``columns`` (name → kind) only; of shard (index, count) of the
    rows only (one worker's share, see data/shards.py)."""
    data = config.data_config
    kinds = columns
    if kinds is None:
        kinds = feature_columns(config, feature_set)
        for name in [data.label_fields[0], *data.sample_weight_fields[:1]]:
            kinds.setdefault(name, "float")
    if batch_size is None:
        batch_size = data.batch_size
        if not training and data.eval_batch_size:
            batch_size = data.eval_batch_size
    return TableReader(
        input_path,
        DATASET_TYPES[data_pb2.DatasetType.Name(data.dataset_type)],
        [ColumnSpec(name, kind) for name, kind in kinds.items()],
        batch_size=batch_size,
        drop_remainder=data.drop_remainder,
        shuffle=data.shuffle and training,
        shuffle_buffer_size=data.shuffle_buffer_size,
        csv_fields=[
            (field.input_name, data_pb2.FieldType.Name(field.input_type))
            for field in data.input_fields
        ],
        csv_delimiter=data.delimiter,
        csv_with_header=data.with_header,
        num_workers=max(data.num_workers, 1),
        int64_candidates=int64_candidates(config, feature_set),
        shard=shard,
    )


def hash_ids(ids: tf.Tensor) -> tf.Tensor:
    """Text ids → int64 fingerprints in [0, 2^63 - 1)."""
    return tf.strings.to_hash_bucket_fast(ids, ID_HASH_BUCKETS)


def batch_transform(
    config, feature_set: FeatureSet
) -> Callable[[dict[str, tf.Tensor]], tuple]:
    """Raw columns → (features, side_inputs, label, sample_weight) for one
    batch.

    The transform's `single_valued` names columns known to hold one value
    per row, which id features need not split (see `make_dataset`).
    """
    data = config.data_config
    label_field = data.label_fields[0]
    weight_field = (
        data.sample_weight_fields[0] if data.sample_weight_fields else None
    )
    item_id = item_id_column(config)
    options = _model_options(config)

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
        if options.remove_accidental_hits and keys.NEG_ITEM_ID in columns:
            side[keys.NEG_ITEM_ID] = hash_ids(columns[keys.NEG_ITEM_ID])
        if options.logq_correction and keys.NEG_LOG_Q in columns:
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
