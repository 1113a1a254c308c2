"""Input files → batches for an exported tower's signatures (host side).

Predict, the warmup records and the item index read their rows with the
training reader and convert each column to its signature dtype here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf

from easymatch.data.csv_source import CSV_TYPES
from easymatch.data.reader import ColumnSpec, TableReader
from easymatch.errors import DataError
from easymatch.specs import DataSpec
from easymatch.specs.derive import DATASET_TYPES


def dataset_kind(data: DataSpec, dataset_type: str | None = None) -> str:
    """ "parquet" or "csv": the flag's DatasetType name, else the config's."""
    if dataset_type is None:
        return data.dataset_type
    if dataset_type not in DATASET_TYPES:
        raise DataError(
            f"dataset_type {dataset_type!r} is not supported (use "
            f"{' or '.join(DATASET_TYPES)})"
        )
    return DATASET_TYPES[dataset_type]


def make_table_reader(
    data: DataSpec,
    input_path: str,
    columns: dict[str, str],
    batch_size: int,
    dataset_type: str | None = None,
) -> TableReader:
    """An in-order reader of `columns` (name → "string" | "float")."""
    return TableReader(
        input_path,
        dataset_kind(data, dataset_type),
        [ColumnSpec(name, kind) for name, kind in columns.items()],
        batch_size=batch_size,
        csv_fields=list(data.csv_fields),
        csv_delimiter=data.csv_delimiter,
        csv_with_header=data.csv_with_header,
    )


def arrow_types(
    input_path: str, data: DataSpec, dataset_type: str | None = None
) -> dict[str, pa.DataType]:
    """Column types of the first input file (CSV: the typed fields)."""
    if dataset_kind(data, dataset_type) == "csv":
        return {
            name: CSV_TYPES[type_name]
            for name, type_name in data.csv_fields
            if type_name in CSV_TYPES
        }
    # Only the file list is needed; the column is never read.
    reader = TableReader(input_path, "parquet", [ColumnSpec("_", "string")], 1)
    first = reader.files()[0]
    try:
        schema = pq.read_schema(first)
    except (OSError, pa.ArrowException) as error:
        raise DataError(
            f"{first}: not a readable Parquet file: {error}"
        ) from None
    return {field.name: field.type for field in schema}


def reader_kinds(dtypes: dict[str, tf.DType]) -> dict[str, str]:
    """How to read each signature input: integers arrive as text."""
    return {
        name: "float" if dtype == tf.float32 else "string"
        for name, dtype in dtypes.items()
    }


@dataclass
class SignatureBatch:
    """Signature inputs of some rows; `missing` marks null integers.

    An int64 input has no null, so those rows can only be sent as
    tf.Example protos, whose parsing treats a missing value as a null.
    """

    inputs: dict[str, np.ndarray]
    missing: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    @property
    def complete_rows(self) -> np.ndarray:
        rows = np.ones(len(self), dtype=bool)
        for mask in self.missing.values():
            rows &= ~mask
        return rows

    def take(self, rows: np.ndarray) -> SignatureBatch:
        return SignatureBatch(
            {name: values[rows] for name, values in self.inputs.items()},
            {name: mask[rows] for name, mask in self.missing.items()},
        )

    def examples(self) -> list[bytes]:
        """One serialized tf.Example per row; nulls are left out."""
        serialized = []
        for row in range(len(self)):
            feature = {}
            for name, values in self.inputs.items():
                value = values[row]
                if values.dtype == np.int64:
                    if not self.missing[name][row]:
                        feature[name] = tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[value])
                        )
                elif values.dtype == np.float32:
                    if not np.isnan(value):
                        feature[name] = tf.train.Feature(
                            float_list=tf.train.FloatList(value=[value])
                        )
                else:
                    feature[name] = tf.train.Feature(
                        bytes_list=tf.train.BytesList(value=[value])
                    )
            example = tf.train.Example(
                features=tf.train.Features(feature=feature)
            )
            serialized.append(example.SerializeToString())
        return serialized


def to_signature_batch(
    batch: dict[str, np.ndarray], dtypes: dict[str, tf.DType]
) -> SignatureBatch:
    """Reader columns (read with `reader_kinds`) → signature dtypes."""
    inputs, missing = {}, {}
    for name, dtype in dtypes.items():
        values = batch[name]
        if dtype != tf.int64:
            inputs[name] = values
            continue
        if values.dtype == np.int64:  # TableReader.int64_columns: no nulls
            inputs[name] = values
            missing[name] = np.zeros(len(values), bool)
            continue
        text = pa.array(values, pa.binary()).cast(pa.string())
        text = pc.if_else(pc.equal(text, ""), None, text)
        try:
            numbers = pc.cast(text, pa.int64())
        except pa.ArrowInvalid as error:
            raise DataError(
                f"column {name!r}: the exported tower takes integers: {error}"
            ) from None
        missing[name] = numbers.is_null().to_numpy(zero_copy_only=False)
        inputs[name] = numbers.fill_null(0).to_numpy()
    return SignatureBatch(inputs, missing)


def signature_batches(
    reader: TableReader,
    dtypes: dict[str, tf.DType],
    extra_columns: Sequence[str] = (),
) -> Iterator[tuple[SignatureBatch, dict[str, np.ndarray]]]:
    """(signature inputs, the extra columns as read) per batch."""
    for batch in reader.batches():
        extra = {name: batch[name] for name in extra_columns}
        yield to_signature_batch(batch, dtypes), extra


def typed_column(
    values: np.ndarray, arrow_type: pa.DataType | None
) -> pa.Array:
    """A column as read (text, float32 or int64) back in its input type,
    or as text when the text does not cast back."""
    if values.dtype == np.float32:
        return pa.array(values, from_pandas=True)
    if values.dtype == np.int64:
        numbers = pa.array(values)
        if arrow_type is None or pa.types.is_string(arrow_type):
            return numbers.cast(pa.string())
        return numbers.cast(arrow_type)
    text = pa.array(values, pa.binary()).cast(pa.string())
    if arrow_type is None or pa.types.is_string(arrow_type):
        return text
    try:
        return pc.cast(pc.if_else(pc.equal(text, ""), None, text), arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return text
