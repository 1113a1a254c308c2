"""The training data's input schema and sample rows, kept in model_dir.

Training records, next to pipeline.config, the Arrow type of every
training-data column (`input_schema.json`) and the first rows of the
columns the features read (`input_sample.parquet`). Export takes its
signature dtypes from the schema and its warmup rows from the sample, so
a model_dir exports after the training data is gone. A model_dir written
before these files existed is exported from the training data, as then.
"""

from __future__ import annotations

import json
import os
import re

import pyarrow as pa
import pyarrow.parquet as pq

from easymatch.data.reader import TableReader
from easymatch.errors import DataError
from easymatch.export.inputs import (
    arrow_types,
    make_table_reader,
    reader_kinds,
    signature_batches,
    typed_column,
)
from easymatch.export.signatures import column_dtypes
from easymatch.run_context import RunContext

INPUT_SCHEMA = "input_schema.json"
INPUT_SAMPLE = "input_sample.parquet"
# Rows read for the warmup records (the first complete ones are used).
SAMPLE_ROWS = 64
_DECIMAL = re.compile(r"decimal(128|256)\((\d+), (\d+)\)")


def type_from_name(name: str) -> pa.DataType | None:
    """str(arrow type) back to the type; None for a kind not kept."""
    match = _DECIMAL.fullmatch(name)
    if match:
        width, precision, scale = match.groups()
        make = pa.decimal128 if width == "128" else pa.decimal256
        return make(int(precision), int(scale))
    try:
        return pa.type_for_alias(name)
    except ValueError:
        return None


def record_input_schema(
    run: RunContext, reader: TableReader, model_dir: str
) -> None:
    """Writes input_schema.json and input_sample.parquet into model_dir.

    `reader` is the training reader: its `int64_columns` (null-free
    integer columns that reach tf.data as int64) are recorded too.
    """
    data = run.specs.data
    train_input_path = run.config.train_input_path
    types = arrow_types(train_input_path, data)
    record = {
        "columns": {name: str(kind) for name, kind in types.items()},
        "int64_columns": sorted(reader.int64_columns()),
    }
    with open(os.path.join(model_dir, INPUT_SCHEMA), "w") as handle:
        json.dump(record, handle, indent=1, sort_keys=True)
    dtypes = column_dtypes(run.feature_set.input_columns(), types)
    rows = make_table_reader(
        data, train_input_path, reader_kinds(dtypes), SAMPLE_ROWS
    )
    first = next(rows.batches(), None)
    if first is None:
        return
    sample = pa.table(
        {name: typed_column(first[name], types.get(name)) for name in dtypes}
    )
    pq.write_table(sample, os.path.join(model_dir, INPUT_SAMPLE))


def training_types(run: RunContext) -> dict[str, pa.DataType]:
    """Column types of the training data: recorded in model_dir, else
    read from the training data."""
    config = run.config
    path = os.path.join(config.model_dir, INPUT_SCHEMA)
    if not os.path.isfile(path):
        return arrow_types(config.train_input_path, run.specs.data)
    with open(path) as handle:
        columns = json.load(handle)["columns"]
    types = {name: type_from_name(kind) for name, kind in columns.items()}
    return {name: kind for name, kind in types.items() if kind is not None}


def sample_batch(run: RunContext, dtypes: dict, rows_path: str | None = None):
    """The first rows as a SignatureBatch of `dtypes`: from `rows_path`
    when given, else model_dir's sample, else the training data."""
    config = run.config
    data = run.specs.data
    sample = os.path.join(config.model_dir, INPUT_SAMPLE)
    dataset_type = None
    if rows_path is None and os.path.isfile(sample):
        rows_path, dataset_type = sample, "ParquetDataset"
    rows_path = rows_path or config.train_input_path
    reader = make_table_reader(
        data, rows_path, reader_kinds(dtypes), SAMPLE_ROWS, dataset_type
    )
    first = next(signature_batches(reader, dtypes), None)
    if first is None:
        raise DataError(f"{rows_path}: no rows for the warmup requests")
    return first[0]
