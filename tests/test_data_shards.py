"""Input sharding: each worker reads only its rows, shards cover the input
once and deliver the same number of batches per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from easymatch.data.reader import ColumnSpec, TableReader
from easymatch.data.shards import bounds, common_batches, shard_ranges
from easymatch.data.sources import Piece


def _file(path: Path, start: int, stop: int, row_group_size: int) -> str:
    ids = list(range(start, stop))
    table = pa.table({"id": ids, "x": [float(i) for i in ids]})
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def _reader(pattern: str, shard, batch_size: int = 3, **kw) -> TableReader:
    columns = [ColumnSpec("id", "string"), ColumnSpec("x", "float")]
    return TableReader(
        pattern, "parquet", columns, batch_size, shard=shard, **kw
    )


def _ids(reader: TableReader, epoch: int = 0) -> list[list[int]]:
    return [[int(v) for v in b["id"]] for b in reader.batches(epoch)]


def test_bounds_split_rows_within_one() -> None:
    assert [bounds(10, i, 3) for i in range(3)] == [(0, 3), (3, 6), (6, 10)]
    assert [bounds(2, i, 4) for i in range(4)] == [
        (0, 0), (0, 1), (1, 1), (1, 2)
    ]  # fmt: skip


def test_whole_files_when_more_files_than_workers() -> None:
    pieces = [Piece(f"f{i}", 0, 0, 10) for i in range(4)]
    first = shard_ranges(pieces, lambda p: p.num_rows, 0, 2)
    second = shard_ranges(pieces, lambda p: p.num_rows, 1, 2)
    assert [(r.piece.path, r.skip, r.rows) for r in first] == [
        ("f0", 0, 10), ("f1", 0, 10)
    ]  # fmt: skip
    assert [r.piece.path for r in second] == ["f2", "f3"]


def test_row_ranges_of_one_row_group(tmp_path: Path) -> None:
    path = _file(tmp_path / "a.parquet", 0, 10, row_group_size=100)
    shards = [_reader(path, (i, 2)) for i in range(2)]
    # 5 rows each: batches of 3 and 2 on both, rows disjoint.
    assert _ids(shards[0]) == [[0, 1, 2], [3, 4]]
    assert _ids(shards[1]) == [[5, 6, 7], [8, 9]]
    assert [s.num_rows() for s in shards] == [5, 5]
    assert [s.num_batches() for s in shards] == [2, 2]


def test_shards_cover_every_row_once_across_files(tmp_path: Path) -> None:
    _file(tmp_path / "a.parquet", 0, 7, row_group_size=3)
    _file(tmp_path / "b.parquet", 7, 18, row_group_size=4)
    pattern = str(tmp_path / "*.parquet")
    seen = []
    for index in range(3):
        reader = _reader(pattern, (index, 3), batch_size=2)
        batches = _ids(reader)
        assert len(batches) == reader.num_batches() == 3
        seen += [i for batch in batches for i in batch]
    assert sorted(seen) == list(range(18))


def test_larger_shard_stops_at_the_common_count(tmp_path: Path) -> None:
    # 11 rows over 2 shards: 5 and 6; batches of 5 → one batch each, the
    # sixth row of the second shard is dropped so both run one step.
    path = _file(tmp_path / "a.parquet", 0, 11, row_group_size=4)
    assert common_batches(11, 2, 5, drop_remainder=False) == 1
    assert _ids(_reader(path, (0, 2), batch_size=5)) == [[0, 1, 2, 3, 4]]
    assert _ids(_reader(path, (1, 2), batch_size=5)) == [[5, 6, 7, 8, 9]]


def test_shuffled_shard_keeps_its_rows_and_resumes(tmp_path: Path) -> None:
    path = _file(tmp_path / "a.parquet", 0, 40, row_group_size=5)
    reader = _reader(path, (1, 2), batch_size=4, shuffle=True, seed=3)
    batches = _ids(reader, epoch=1)
    assert sorted(i for b in batches for i in b) == list(range(20, 40))
    assert len(batches) == reader.num_batches() == 5
    stream = reader.dataset(num_epochs=2, skip_batches=7)
    rest = [[int(v) for v in np.asarray(b["id"])] for b in stream]
    assert rest == batches[2:]


def test_bad_shard_index() -> None:
    with pytest.raises(ValueError, match="shard index"):
        _reader("x.parquet", (2, 2))
