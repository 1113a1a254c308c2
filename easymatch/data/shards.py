"""Each worker's share of the input: one contiguous range of rows.

The files' rows, in sorted file order and by pieces (Parquet row groups,
whole CSV files), are cut into `count` ranges whose sizes differ by at
most one row; worker `index` reads only the pieces its range overlaps,
whole files when there are more files than workers, row ranges of a row
group when there are fewer. Row counts come from Parquet metadata (CSV
files are counted by a parse pass).

Every worker must run the same number of steps per epoch, or the others
wait in a collective forever: a shard yields `common_batches` batches, the
smallest shard's count, and drops the at most `count - 1` rows that a
larger shard holds beyond them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from easymatch.data.sources import Piece


@dataclass(frozen=True)
class RowRange:
    """Rows [skip, skip + rows) of a piece; rows None: to its end."""

    piece: Piece
    skip: int = 0
    rows: int | None = None


def bounds(total: int, index: int, count: int) -> tuple[int, int]:
    """[first, end) of range `index` of `count` over `total` rows."""
    return total * index // count, total * (index + 1) // count


def shard_ranges(
    pieces: Sequence[Piece],
    piece_rows: Callable[[Piece], int],
    index: int,
    count: int,
) -> list[RowRange]:
    """The row ranges of pieces that shard `index` of `count` reads."""
    total = sum(piece_rows(p) for p in pieces)
    first, end = bounds(total, index, count)
    ranges, start = [], 0
    for piece in pieces:
        rows = piece_rows(piece)
        lo, hi = max(first, start), min(end, start + rows)
        if lo < hi:
            ranges.append(RowRange(piece, lo - start, hi - lo))
        start += rows
    return ranges


def common_batches(
    total: int, count: int, batch_size: int, drop_remainder: bool
) -> int:
    """Batches per epoch that every shard of `count` can deliver."""
    smallest = total // count  # the first shard is never larger
    full, rest = divmod(smallest, batch_size)
    return full + int(bool(rest) and not drop_remainder)
