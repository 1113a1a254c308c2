"""CSV (delimited text) files as projected Arrow record batches."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.csv as pacsv

from easymatch.data.convert import cast_or_raise
from easymatch.data.sources import MIN_CHUNK_ROWS, Piece, check_columns
from easymatch.errors import DataError

CSV_TYPES: dict[str, pa.DataType] = {
    "INT32": pa.int32(),
    "INT64": pa.int64(),
    "STRING": pa.string(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


class CsvSource:
    """Reads the projected columns of delimited text files.

    Columns are named by ``fields`` (name, type) in file order, or by the
    header line. A column absent from ``fields`` is read as text, so values
    like "007" reach string features unchanged.
    """

    def __init__(
        self,
        names: Sequence[str],
        fields: Sequence[tuple[str, str]],
        delimiter: str,
        with_header: bool,
    ) -> None:
        if len(delimiter) != 1:
            raise ValueError(f"CSV delimiter not one character: {delimiter!r}")
        for name, type_name in fields:
            if type_name not in CSV_TYPES:
                raise ValueError(
                    f"CSV field {name!r}: unknown type {type_name!r} "
                    f"(one of {', '.join(CSV_TYPES)})"
                )
        self._names = list(names)
        self._fields = [name for name, _ in fields]
        self._types = {n: CSV_TYPES[t] for n, t in fields}
        self._header = with_header
        self._parse = pacsv.ParseOptions(delimiter=delimiter)

    def is_integer(self, path: str, name: str) -> bool:
        """Whether ``name`` is declared INT32 or INT64 (text otherwise)."""
        return pa.types.is_integer(self._types.get(name, pa.string()))

    def is_null_free_int64(self, path: str, name: str) -> bool:
        """Nulls are unknown without parsing the file, so False."""
        return False

    def _file_columns(self, path: str) -> list[str]:
        if not self._header:
            if not self._fields:
                raise DataError(
                    f"{path}: CSV without a header needs the input fields"
                )
            return self._fields
        try:
            with open(path, "rb") as f:
                line = f.readline()
            return pacsv.read_csv(
                io.BytesIO(line), parse_options=self._parse
            ).column_names
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"{path}: cannot read the CSV header: {e}") from e

    def pieces(self, path: str) -> list[Piece]:
        check_columns(path, self._names, self._file_columns(path))
        return [Piece(path, None, 0, None)]

    def _open(
        self,
        path: str,
        names: Sequence[str],
        types: dict[str, pa.DataType],
        null_strings: bool = False,
    ) -> pacsv.CSVStreamingReader:
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=None if self._header else self._fields,
                block_size=1 << 24,
            ),
            parse_options=self._parse,
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(names),
                strings_can_be_null=null_strings,
            ),
        )

    def _batches(
        self, path: str, names: Sequence[str], types: dict[str, pa.DataType]
    ) -> Iterator[pa.RecordBatch]:
        if os.path.getsize(path) == 0:
            return  # Arrow rejects an empty file; it has no rows
        try:
            yield from self._open(path, names, types)
        except pa.ArrowException as e:
            self._diagnose(path, e)

    def count(self, path: str) -> int:
        first = self._file_columns(path)[0]
        types = {first: pa.string()}
        return sum(len(b) for b in self._batches(path, [first], types))

    def read(
        self, piece: Piece, skip: int, chunk_rows: int
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        types = {n: self._types.get(n, pa.string()) for n in self._names}
        row = 0
        for block in self._batches(piece.path, self._names, types):
            step = max(chunk_rows, MIN_CHUNK_ROWS)
            for start in range(min(skip, len(block)), len(block), step):
                yield row + start, block.slice(start, step)
            skip -= min(skip, len(block))
            row += len(block)

    def _diagnose(self, path: str, error: pa.ArrowException) -> None:
        """Re-reads a failed file to name the bad line or cell, then raises.

        The streaming reader reports neither the line of a malformed row nor
        the row of a bad number, so this runs only after it failed.
        """
        bad: list[pacsv.InvalidRow] = []

        def record(row: pacsv.InvalidRow) -> str:
            bad.append(row)
            return "error"

        first = self._file_columns(path)[0]
        try:
            pacsv.read_csv(
                path,
                # Single-threaded: only then does Arrow number the rows.
                read_options=pacsv.ReadOptions(
                    use_threads=False,
                    column_names=None if self._header else self._fields,
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter=self._parse.delimiter,
                    invalid_row_handler=record,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={first: pa.string()},
                    include_columns=[first],
                ),
            )
        except pa.ArrowException:
            if bad:
                raise DataError(
                    f"{path}: line {bad[0].number}: expected "
                    f"{bad[0].expected_columns} fields, "
                    f"got {bad[0].actual_columns}"
                ) from None
        try:
            for name in self._names:
                self._check_numbers(path, name)
        except pa.ArrowException:
            pass  # not a bad number either: report Arrow's own message
        raise DataError(f"{path}: cannot read CSV: {error}") from error

    def _check_numbers(self, path: str, name: str) -> None:
        """Raises a DataError naming the first cell of a numeric field that
        does not parse as its declared type."""
        target = self._types.get(name, pa.string())
        if target == pa.string():
            return
        kind = next(k for k, v in CSV_TYPES.items() if v == target)
        row = 0
        # Null markers ("", "NA", ...) stay null here, as in a typed read.
        for block in self._open(path, [name], {name: pa.string()}, True):
            cast_or_raise(block.column(0), target, path, name, row, kind)
            row += len(block)
