"""TableReader: Parquet or CSV files → batches of raw columns.

The output follows the raw-column contract of docs/design.md: one dict per
batch, column name → 1-D array (object array of ``bytes`` for kind "string",
float32 for kind "float", int64 for the `int64_columns`), or the same as
tf.string / tf.float32 / tf.int64 tensors.
"""

from __future__ import annotations

import functools
import glob
import itertools
import os
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from easymatch.data.batching import (
    Batch,
    batch_len,
    ordered_parallel,
    rebatch,
    shuffle_rows,
)
from easymatch.data.convert import FLOAT, INT64, KINDS, STRING, to_numpy
from easymatch.data.csv_source import CsvSource
from easymatch.data.pump import pumped_dataset
from easymatch.data.shards import RowRange, common_batches, shard_ranges
from easymatch.data.sources import ParquetSource, Piece
from easymatch.errors import DataError

TF_DTYPES = {STRING: tf.string, FLOAT: tf.float32, INT64: tf.int64}


@dataclass(frozen=True)
class ColumnSpec:
    """An input column and how it is read: kind "string" or "float"."""

    name: str
    kind: str


class TableReader:
    """Reads the listed columns of Parquet or CSV files in fixed-size batches.

    ``input_path`` is a comma-separated list of files or globs; the matches
    are read in sorted order and batches are filled across file boundaries.
    Only the listed columns are read. Errors in the data raise ``DataError``
    naming the file, the column and the 1-based data row (for a malformed CSV
    row: its line, counting the header but not blank lines).

    Without ``shuffle`` the file and row order is kept. With ``shuffle`` the
    order is a function of (``seed``, epoch): each epoch permutes the pieces
    (Parquet row groups, whole CSV files), then passes rows through a shuffle
    buffer of ``shuffle_buffer_size × batch_size`` rows. TorchEasyRec's
    ``shuffle_buffer_size`` counts batches too, but it shuffles whole batches;
    easymatch keeps that unit and mixes rows, so a batch is not a run of
    neighbouring rows.

    ``num_workers`` pieces are read and converted ahead in threads; the
    output order does not depend on it.

    ``shard`` = (index, count): read only that worker's share of the rows
    (see shards.py); epochs then have the same number of batches on every
    shard.
    """

    def __init__(
        self,
        input_path: str,
        dataset_type: str,
        columns: Sequence[ColumnSpec],
        batch_size: int,
        drop_remainder: bool = False,
        shuffle: bool = False,
        shuffle_buffer_size: int = 32,
        seed: int = 0,
        csv_fields: Sequence[tuple[str, str]] = (),
        csv_delimiter: str = ",",
        csv_with_header: bool = False,
        num_workers: int = 1,
        int64_candidates: Collection[str] = (),
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        names = [c.name for c in columns]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"columns must be non-empty and unique: {names}")
        for c in columns:
            if c.kind not in KINDS:
                raise ValueError(f"column {c.name!r}: unknown kind {c.kind!r}")
        if not 0 <= shard[0] < shard[1]:
            raise ValueError(f"shard index out of range: {shard}")
        if batch_size < 1 or shuffle_buffer_size < 1:
            raise ValueError("batch_size and shuffle_buffer_size must be >= 1")
        if dataset_type == "parquet":
            self._source: ParquetSource | CsvSource = ParquetSource(names)
        elif dataset_type == "csv":
            self._source = CsvSource(
                names, csv_fields, csv_delimiter, csv_with_header
            )
        else:
            raise ValueError(f"unknown dataset_type {dataset_type!r}")
        self._input_path = input_path
        self._columns = list(columns)
        self._batch_size = batch_size
        self._drop_remainder = drop_remainder
        self._shuffle = shuffle
        self._buffer_rows = shuffle_buffer_size * batch_size
        self._seed = seed
        self._num_workers = max(1, num_workers)
        self._int64_candidates = set(int64_candidates)
        self._int64: set[str] | None = None
        self._files: list[str] | None = None
        self._piece_list: list[Piece] | None = None
        self._file_rows: dict[str, int] = {}
        self._shard = shard
        self._ranges: list[RowRange] | None = None

    def files(self) -> list[str]:
        """The matched files, sorted; DataError if a pattern matches none."""
        if self._files is None:
            found: set[str] = set()
            patterns = [p.strip() for p in self._input_path.split(",")]
            # Empty entries (a trailing comma) are skipped unless all are.
            for pattern in [p for p in patterns if p] or [""]:
                matches = [m for m in glob.glob(pattern) if os.path.isfile(m)]
                if not matches:
                    raise DataError(f"no file matches {pattern!r}")
                found.update(matches)
            self._files = sorted(found)
        return self._files

    def _pieces(self) -> list[Piece]:
        # Also checks every file's columns before any data is read.
        if self._piece_list is None:
            self._piece_list = [
                piece
                for path in self.files()
                for piece in self._source.pieces(path)
            ]
        return self._piece_list

    def _row_ranges(self) -> list[RowRange]:
        """What this shard reads: whole pieces unless sharded."""
        if self._ranges is None:
            index, count = self._shard
            self._ranges = (
                [RowRange(p) for p in self._pieces()]
                if count == 1
                else shard_ranges(
                    self._pieces(), self._piece_rows, index, count
                )
            )
        return self._ranges

    def _range_rows(self, row_range: RowRange) -> int:
        if row_range.rows is not None:
            return row_range.rows
        return self._piece_rows(row_range.piece)

    def _piece_rows(self, piece: Piece) -> int:
        if piece.num_rows is not None:
            return piece.num_rows
        if piece.path not in self._file_rows:
            # Only CSV pieces lack a row count; counting parses the file.
            assert isinstance(self._source, CsvSource)
            self._file_rows[piece.path] = self._source.count(piece.path)
        return self._file_rows[piece.path]

    def integer_columns(self) -> set[str]:
        """Text columns whose values are integers in every file, so one
        value (or none) per row: features need not split them."""
        self._pieces()  # reads every file's schema
        return {
            c.name
            for c in self._columns
            if c.kind == STRING
            and all(
                self._source.is_integer(path, c.name) for path in self.files()
            )
        }

    def int64_columns(self) -> set[str]:
        """The ``int64_candidates`` delivered as int64 instead of text:
        int64-sized integers without a null in every file (by the files'
        metadata).

        Text costs a Python object per value on the way to tf.data; an
        integer array crosses as one buffer, and the id features that read
        it format the same text inside TensorFlow if they need it.
        """
        if self._int64 is None:
            self._pieces()
            self._int64 = {
                c.name
                for c in self._columns
                if c.kind == STRING
                and c.name in self._int64_candidates
                and all(
                    self._source.is_null_free_int64(path, c.name)
                    for path in self.files()
                )
            }
        return self._int64

    def num_rows(self) -> int:
        """Rows in all files, or this shard's (Parquet: metadata only; CSV:
        a parse pass)."""
        return sum(self._range_rows(r) for r in self._row_ranges())

    def num_batches(self) -> int:
        """Batches per epoch (sharded: the same on every shard)."""
        if self._shard[1] > 1:
            total = sum(self._piece_rows(p) for p in self._pieces())
            return common_batches(
                total, self._shard[1], self._batch_size, self._drop_remainder
            )
        full, rest = divmod(self.num_rows(), self._batch_size)
        return full + int(bool(rest) and not self._drop_remainder)

    def _kinds(self) -> dict[str, str]:
        """Column → kind as delivered: "string", "float" or "int64"."""
        ints = self.int64_columns()
        return {
            c.name: INT64 if c.name in ints else c.kind for c in self._columns
        }

    def _chunks(self, row_range: RowRange, skip: int) -> Iterator[Batch]:
        kinds = self._kinds()
        piece = row_range.piece
        left = row_range.rows - skip if row_range.rows is not None else None
        for first_row, batch in self._source.read(
            piece, row_range.skip + skip, self._batch_size
        ):
            if left is not None:
                if left <= 0:
                    return
                batch = batch.slice(0, left)
                left -= len(batch)
            yield {
                name: to_numpy(
                    batch.column(name), kind, piece.path, name, first_row
                )
                for name, kind in kinds.items()
            }

    def _epoch(self, epoch: int, skip_batches: int) -> Iterator[Batch]:
        pieces = self._row_ranges()
        rng = np.random.default_rng([self._seed, epoch])
        if self._shuffle:
            pieces = [pieces[i] for i in rng.permutation(len(pieces))]
        # In order, skipped rows are dropped before conversion, and whole
        # pieces by their row counts without being read.
        skip = 0 if self._shuffle else skip_batches * self._batch_size
        tasks = []
        for piece in pieces:
            if skip:
                rows = self._range_rows(piece)
                if rows <= skip:
                    skip -= rows
                    continue
            tasks.append(functools.partial(self._chunks, piece, skip))
            skip = 0
        batches = rebatch(
            ordered_parallel(tasks, self._num_workers), self._batch_size
        )
        if self._shuffle:
            batches = itertools.islice(
                shuffle_rows(batches, rng, self._buffer_rows, self._batch_size),
                skip_batches,
                None,
            )
        if self._shard[1] > 1:
            batches = itertools.islice(
                batches, max(self.num_batches() - skip_batches, 0)
            )
        for batch in batches:
            if batch_len(batch) == self._batch_size or not self._drop_remainder:
                yield batch

    def batches(self, epoch: int = 0) -> Iterator[Batch]:
        """One epoch of batches as numpy arrays."""
        return self._epoch(epoch, 0)

    def _stream(
        self, num_epochs: int | None, skip_batches: int
    ) -> Iterator[Batch]:
        first = 0
        if skip_batches:
            per_epoch = self.num_batches()
            if per_epoch:
                first, skip_batches = divmod(skip_batches, per_epoch)
        epochs: Iterator[int] | range = (
            itertools.count(first)
            if num_epochs is None
            else range(first, num_epochs)
        )
        for epoch in epochs:
            yield from self._epoch(epoch, skip_batches)
            skip_batches = 0

    def dataset(
        self, num_epochs: int | None = 1, skip_batches: int = 0
    ) -> tf.data.Dataset:
        """Epochs 0, 1, ... as a tf.data pipeline (None: repeat forever).

        ``skip_batches`` drops that many batches from the start of this
        stream, across epochs, so that training resumes exactly where a
        checkpoint was taken; skipped batches never become tensors.
        """
        self._pieces()  # file and column errors raise here, not in tf.data
        if num_epochs is None and self.num_batches() == 0:
            raise DataError(f"{self._input_path}: no batch to repeat")
        size = self._batch_size if self._drop_remainder else None
        names = [c.name for c in self._columns]

        def open_stream() -> Iterator[list[np.ndarray]]:
            for batch in self._stream(num_epochs, skip_batches):
                yield [batch[name] for name in names]

        ds = pumped_dataset(
            open_stream,
            [TF_DTYPES[kind] for kind in self._kinds().values()],
            [[size]] * len(names),
        ).map(lambda *columns: dict(zip(names, columns, strict=True)))
        return ds.prefetch(tf.data.AUTOTUNE)
