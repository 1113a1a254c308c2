"""Config → tf.data of (features, label, sample_weight) batches."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from easymatch.data.reader import ColumnSpec, TableReader
from easymatch.features import FeatureSet
from easymatch.protos import data_pb2

DATASET_TYPES = {"ParquetDataset": "parquet", "CsvDataset": "csv"}


def make_reader(
    config,
    feature_set: FeatureSet,
    input_path: str,
    *,
    training: bool,
    batch_size: int | None = None,
) -> TableReader:
    """A reader of every column the features, label and weight need."""
    data = config.data_config
    kinds = feature_set.input_columns()
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
    )


def batch_transform(
    config, feature_set: FeatureSet
) -> Callable[[dict[str, tf.Tensor]], tuple]:
    """Raw columns → (features, label, sample_weight) for one batch."""
    data = config.data_config
    label_field = data.label_fields[0]
    weight_field = (
        data.sample_weight_fields[0] if data.sample_weight_fields else None
    )

    def transform(columns: dict[str, tf.Tensor]) -> tuple:
        label = columns[label_field]
        weight = (
            columns[weight_field]
            if weight_field is not None
            else tf.ones_like(label)
        )
        return feature_set.transform(columns), label, weight

    return transform


def make_dataset(
    reader: TableReader,
    transform: Callable,
    *,
    num_epochs: int | None,
    skip_batches: int = 0,
    input_context: tf.distribute.InputContext | None = None,
) -> tf.data.Dataset:
    """Batches for one input pipeline (one worker) of a strategy."""
    dataset = reader.dataset(num_epochs=num_epochs, skip_batches=skip_batches)
    if input_context is not None and input_context.num_input_pipelines > 1:
        dataset = dataset.shard(
            input_context.num_input_pipelines, input_context.input_pipeline_id
        )
    dataset = dataset.map(
        transform, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
