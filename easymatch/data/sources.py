"""Per-file readers: files as projected Arrow record batches, by piece.

A file is split into pieces (Parquet row groups; a CSV file is one piece,
see csv_source.py) so that pieces can be read in parallel and skipped by
their metadata row counts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from easymatch.errors import DataError

# Row batches handed to the converter: big enough to amortize per-call
# overhead, small enough to keep workers' queues light.
MIN_CHUNK_ROWS = 8192


@dataclass(frozen=True)
class Piece:
    """A unit of parallel reading: a Parquet row group or a whole CSV."""

    path: str
    row_group: int | None
    first_row: int  # 0-based index of the piece's first row in its file
    num_rows: int | None  # None: unknown until the file is read (CSV)


def check_columns(path: str, names: Sequence[str], have: list[str]) -> None:
    for name in names:
        if name not in have:
            raise DataError(
                f"{path}: column {name!r} not found "
                f"(columns: {', '.join(have)})"
            )


class ParquetSource:
    """Reads the projected columns of Parquet files by row group."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = list(names)
        self._schemas: dict[str, pa.Schema] = {}
        self._null_free: dict[str, set[str]] = {}

    def is_integer(self, path: str, name: str) -> bool:
        """Whether column ``name`` of a file seen by `pieces` is integer."""
        return pa.types.is_integer(self._schemas[path].field(name).type)

    def is_null_free_int64(self, path: str, name: str) -> bool:
        """Whether ``name`` holds integers that fit int64 (not uint64) and
        every row group's statistics count 0 nulls (False without them)."""
        column_type = self._schemas[path].field(name).type
        return (
            pa.types.is_integer(column_type)
            and not pa.types.is_uint64(column_type)
            and name in self._null_free[path]
        )

    def pieces(self, path: str) -> list[Piece]:
        try:
            meta = pq.read_metadata(path)
            schema = meta.schema.to_arrow_schema()
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"{path}: not a readable Parquet file: {e}") from e
        check_columns(path, self._names, schema.names)
        self._schemas[path] = schema
        self._null_free[path] = _null_free_columns(meta, self._names)
        pieces, first = [], 0
        for i in range(meta.num_row_groups):
            n = meta.row_group(i).num_rows
            pieces.append(Piece(path, i, first, n))
            first += n
        return pieces

    def read(
        self, piece: Piece, skip: int, chunk_rows: int
    ) -> Iterator[tuple[int, pa.RecordBatch]]:
        """Yields (0-based file row of the batch's first row, batch)."""
        row = piece.first_row
        try:
            pf = pq.ParquetFile(piece.path)
            batches = pf.iter_batches(
                max(chunk_rows, MIN_CHUNK_ROWS),
                row_groups=[piece.row_group],
                columns=self._names,
                use_threads=True,
            )
            for batch in batches:
                drop = min(skip, len(batch))
                skip -= drop
                if drop < len(batch):
                    yield row + drop, batch.slice(drop)
                row += len(batch)
        except (OSError, pa.ArrowException) as e:
            raise DataError(f"{piece.path}: cannot read Parquet: {e}") from e


def _null_free_columns(meta: pq.FileMetaData, names: Sequence[str]) -> set[str]:
    wanted = set(names)
    free = set(wanted)
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            column = group.column(j)
            name = column.path_in_schema
            if name not in wanted:
                continue
            stats = column.statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                free.discard(name)
    return free
