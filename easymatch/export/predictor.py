"""Embeddings of input rows from an exported tower (the predict CLI)."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from easymatch.config import load_pipeline_config
from easymatch.errors import DataError, EasyMatchError, raise_tf_error
from easymatch.export.inputs import (
    SignatureBatch,
    arrow_types,
    make_table_reader,
    reader_kinds,
    signature_batches,
    typed_column,
)
from easymatch.export.signatures import (
    EXAMPLE_SIGNATURE,
    EXAMPLES_INPUT,
    SERVING_SIGNATURE,
)
from easymatch.specs.derive import data_spec

logger = logging.getLogger("easymatch")

PIPELINE_CONFIG = "pipeline.config"
OUTPUT_FILE = "part-0.parquet"


class TowerRunner:
    """An exported tower loaded with tf.saved_model.load, run on batches.

    Rows whose integer inputs are all present go through
    `serving_default`; a batch with a null integer goes through the
    tf.Example signature, which parses a missing value as the null the
    training reader produced.
    """

    def __init__(self, path: str) -> None:
        try:
            loaded = tf.saved_model.load(path)
        except (OSError, ValueError, tf.errors.OpError) as error:
            first = str(error).strip().splitlines()[0]
            raise EasyMatchError(f"{path}: not a SavedModel: {first}") from None
        # Kept: the signatures need the restored variables alive.
        self.loaded = loaded
        self._serving = loaded.signatures[SERVING_SIGNATURE]
        self._examples = loaded.signatures[EXAMPLE_SIGNATURE]
        specs = self._serving.structured_input_signature[1]
        self.dtypes = {name: spec.dtype for name, spec in specs.items()}
        (self.output,) = self._serving.structured_outputs

    def __call__(self, batch: SignatureBatch) -> np.ndarray:
        """float32 [rows, d]."""
        if batch.complete_rows.all():
            outputs = self._serving(
                **{
                    name: tf.constant(values, self.dtypes[name])
                    for name, values in batch.inputs.items()
                }
            )
        else:
            outputs = self._examples(
                **{EXAMPLES_INPUT: tf.constant(batch.examples(), tf.string)}
            )
        return outputs[self.output].numpy()


def tower_config(saved_model_path: str, edit_config_json: str | None):
    """The pipeline config export wrote next to the tower's SavedModel."""
    path = os.path.join(saved_model_path, PIPELINE_CONFIG)
    if not os.path.isfile(path):
        raise EasyMatchError(
            f"{path}: not found; --scripted_model_path must be an exported "
            "tower directory (export_dir/user or export_dir/item)"
        )
    return load_pipeline_config(path, edit_config_json or None)


def predict(
    saved_model_path: str,
    input_path: str,
    output_path: str,
    *,
    reserved_columns: Sequence[str] = (),
    output_columns: Sequence[str] = (),
    batch_size: int | None = None,
    dataset_type: str | None = None,
    edit_config_json: str | None = None,
    predict_steps: int | None = None,
) -> str:
    """Writes `output_path/part-0.parquet`; returns its path.

    Columns: the reserved input columns, typed as in the input, then the
    tower's embedding as list<float>; `output_columns` (TorchEasyRec's
    flag) can only name that embedding, the tower's one output.
    """
    config = tower_config(saved_model_path, edit_config_json)
    runner = TowerRunner(saved_model_path)
    unknown = set(output_columns) - {runner.output}
    if unknown:
        raise EasyMatchError(
            f"--output_columns: {', '.join(sorted(unknown))} not an output "
            f"of {saved_model_path} (it has {runner.output})"
        )
    data = data_spec(config)
    kinds = reader_kinds(runner.dtypes)
    for name in reserved_columns:
        kinds.setdefault(name, "string")
    reader = make_table_reader(
        data,
        input_path,
        kinds,
        batch_size or data.batch_size_for(training=False),
        dataset_type,
    )
    types = arrow_types(input_path, data, dataset_type)
    batches = itertools.islice(
        signature_batches(reader, runner.dtypes, reserved_columns),
        predict_steps or None,
    )
    os.makedirs(output_path, exist_ok=True)
    path = os.path.join(output_path, OUTPUT_FILE)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch, reserved in batches:
            table = {
                name: typed_column(reserved[name], types.get(name))
                for name in reserved_columns
            }
            table[runner.output] = _list_array(runner(batch))
            record = pa.table(table)
            if writer is None:
                writer = pq.ParquetWriter(path, record.schema)
            writer.write_table(record)
            rows += len(batch)
    except tf.errors.InvalidArgumentError as error:
        raise_tf_error(error, input_path)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise DataError(f"{input_path}: no rows to predict")
    logger.info("wrote %d rows to %s", rows, path)
    return path


def _list_array(embeddings: np.ndarray) -> pa.ListArray:
    rows, width = embeddings.shape
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * width)
    return pa.ListArray.from_arrays(offsets, pa.array(embeddings.ravel()))
