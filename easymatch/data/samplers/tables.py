"""Sampler tables: a typed header line, then delimited rows (SPEC §2.6).

Item table ``id:int64 weight:float attrs:string``, user table ``id weight``,
edge tables ``userid itemid weight``; tab-separated unless the sampler sets
``field_delimiter``. Files are parsed by pyarrow.csv and checked with
vectorized compute; slower per-row work runs only to name a bad line.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from easymatch.data.samplers.ids import IdIndex, first_repeat, text_keys
from easymatch.errors import DataError

INT_TYPES = ("int64", "int32", "int", "long")
TYPES = (*INT_TYPES, "float", "double", "string")
ITEM_COLUMNS = ("id:int64", "weight:float", "attrs:string")
# Row i of the parsed table is this line of the file (line 1: the header).
FIRST_LINE = 2


@dataclass
class Table:
    """One file's columns as utf8 arrays, with the header's id types."""

    path: str
    types: list[str]
    columns: list[pa.Array]

    def fail(self, row: int, message: str) -> DataError:
        return DataError(f"{self.path}: line {row + FIRST_LINE}: {message}")

    def cast(self, column: int, to: pa.DataType, what: str) -> pa.Array:
        """The column as ``to``; a bad cell raises naming its line."""
        values = self.columns[column]
        try:
            return pc.cast(values, to)
        except pa.ArrowInvalid:
            # Bisect on prefixes: vectorized casts find the first bad cell.
            good, bad = 0, len(values)
            while bad - good > 1:
                mid = (good + bad) // 2
                try:
                    pc.cast(values[:mid], to)
                    good = mid
                except pa.ArrowInvalid:
                    bad = mid
            kind = "an integer" if pa.types.is_integer(to) else "a number"
            text = values[good].as_py()
            raise self.fail(good, f"{what} {text!r} is not {kind}") from None

    def keys(self, column: int, integer: bool, what: str) -> np.ndarray:
        """Ids as lookup keys: int64, or UTF-8 bytes for string ids."""
        if integer:
            return self.cast(column, pa.int64(), what).to_numpy()
        return text_keys(self.columns[column])


def read_table(path: str, columns: tuple[str, ...], delimiter: str) -> Table:
    """Reads a table whose header must have ``len(columns)`` name:type."""
    if len(delimiter) != 1:
        raise ValueError(f"delimiter {delimiter!r} must be one character")
    expected = delimiter.join(columns)
    if not os.path.isfile(path):
        raise DataError(f"{path}: sampler table not found")
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        header = f.readline().rstrip("\r\n").split(delimiter)
    types = [part.partition(":")[2] for part in header]
    if len(header) != len(columns) or not all(t in TYPES for t in types):
        raise DataError(
            f"{path}: line 1: expected a header like {expected!r}, "
            f"got {delimiter.join(header)!r}"
        )
    names = [f"c{i}" for i in range(len(columns))]
    try:
        table = pacsv.read_csv(path, *_csv_options(names, delimiter))
    except pa.ArrowInvalid as error:
        raise _unreadable(path, names, delimiter, error) from None
    return Table(path, types, [table.column(n).combine_chunks() for n in names])


def _csv_options(names: list[str], delimiter: str, **parse: object) -> tuple:
    return (
        pacsv.ReadOptions(
            skip_rows=1, column_names=names, use_threads=not parse
        ),
        pacsv.ParseOptions(
            delimiter=delimiter,
            quote_char=False,
            double_quote=False,
            escape_char=False,
            # Keeps row i on line i + 2: a blank line stays a row of empty
            # cells, which then fails its checks with its own line number.
            ignore_empty_lines=False,
            **parse,
        ),
        pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.utf8())),
    )


def _unreadable(
    path: str, names: list[str], delimiter: str, error: Exception
) -> DataError:
    """The first bad line of a file pyarrow failed to read."""
    bad: list[pacsv.InvalidRow] = []

    def record(row: pacsv.InvalidRow) -> str:
        bad.append(row)
        return "skip"

    # A handler makes the read single-threaded, which numbers bad lines.
    options = _csv_options(names, delimiter, invalid_row_handler=record)
    with contextlib.suppress(pa.ArrowInvalid):
        pacsv.read_csv(path, *options)
    if bad:
        return DataError(
            f"{path}: line {bad[0].number}: expected {len(names)} "
            f"columns separated by {delimiter!r}, got {bad[0].actual_columns}"
        )
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return DataError(f"{path}: line {number}: not UTF-8 text")
    return DataError(f"{path}: cannot read: {error}")


class TextColumn:
    """UTF-8 values of one item column, gathered by row."""

    def __init__(self, values: pa.Array) -> None:
        lengths = pc.binary_length(values)
        self.lengths = lengths.to_numpy().astype(np.int64)
        objects = values.cast(pa.binary()).to_numpy(zero_copy_only=False)
        self.values = np.asarray(objects)
        # Fixed width gathers in one copy, unless a few long values would
        # make it much larger than one Python object per value.
        if len(values) and self.lengths.max() <= self.lengths.mean() + 48:
            self.values = self.values.astype(np.bytes_)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self.values[rows]

    def packed(self, rows: np.ndarray) -> list[np.ndarray]:
        """The values at ``rows`` as one byte string (0-d object array) with
        each value's start and length in it, for ``tf.strings.substr``.

        Handing tf.numpy_function one string instead of one per value
        makes the conversion several times faster.
        """
        taken = self.values[rows]
        lengths = self.lengths[rows]
        if taken.dtype.kind == "S":
            blob = taken.tobytes()
            starts = np.arange(len(rows)) * taken.dtype.itemsize
        else:
            blob = b"".join(taken)
            starts = np.cumsum(lengths) - lengths
        return [np.array(blob, dtype=object), starts, lengths]


@dataclass
class ItemTable:
    """Item ids, sampling weights and attrs split into one array per field."""

    path: str
    index: IdIndex
    ids: TextColumn
    weights: np.ndarray
    attrs: dict[str, TextColumn]
    _floats: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.weights)

    def column(self, name: str) -> TextColumn:
        """Attr ``name``, or the ids for ""."""
        return self.attrs[name] if name else self.ids

    def floats(self, name: str) -> np.ndarray:
        """Attr ``name`` as float32 ("" → NaN), parsed once and cached."""
        if name not in self._floats:
            text = self.attrs[name].values.tolist()
            values = pa.array(text, pa.binary()).cast(pa.utf8())
            values = pc.if_else(pc.equal(values, ""), None, values)
            table = Table(self.path, [], [values])
            parsed = table.cast(0, pa.float32(), f"attr {name!r}")
            self._floats[name] = parsed.fill_null(np.nan).to_numpy()
        return self._floats[name]


def read_item_table(
    path: str,
    attr_fields: list[str],
    attr_delimiter: str,
    delimiter: str,
) -> ItemTable:
    table = read_table(path, ITEM_COLUMNS, delimiter)
    if len(table.columns[0]) == 0:
        raise DataError(f"{path}: the item table has no rows")
    integer = table.types[0] in INT_TYPES
    keys = table.keys(0, integer, "id")
    repeat = first_repeat(keys)
    if repeat is not None:
        text = table.columns[0][repeat].as_py()
        raise table.fail(repeat, f"id {text!r} appears on an earlier line")
    weights = check_weights(table, 1)
    if weights.sum() <= 0:
        raise DataError(f"{path}: every item weight is 0")
    attrs: dict[str, TextColumn] = {}
    if attr_fields:
        parts = pc.split_pattern(table.columns[2], attr_delimiter)
        sizes = pc.list_value_length(parts).to_numpy()
        wrong = np.flatnonzero(sizes != len(attr_fields))
        if len(wrong):
            raise table.fail(
                int(wrong[0]),
                f"attrs has {sizes[wrong[0]]} values separated by "
                f"{attr_delimiter!r}, attr_fields has {len(attr_fields)}",
            )
        for i, name in enumerate(attr_fields):
            attrs[name] = TextColumn(pc.list_element(parts, i))
    index = IdIndex(keys, integer)
    return ItemTable(path, index, TextColumn(table.columns[0]), weights, attrs)


def check_weights(table: Table, column: int) -> np.ndarray:
    """The weight column as float64; non-finite or negative is an error."""
    weights = table.cast(column, pa.float64(), "weight").to_numpy()
    bad = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if len(bad):
        text = table.columns[column][bad[0]].as_py()
        raise table.fail(int(bad[0]), f"weight {text!r} must be >= 0")
    return weights
