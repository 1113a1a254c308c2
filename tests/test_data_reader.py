"""TableReader: values, batching, shuffling, resuming and error messages."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from easymatch.data.reader import ColumnSpec, TableReader
from easymatch.errors import DataError, data_error_from_tf

S, F = "string", "float"


def _write(path: Path, table: pa.Table, row_group_size: int = 1000) -> str:
    pq.write_table(table, path, row_group_size=row_group_size)
    return str(path)


def _ids(path: Path, start: int, stop: int, **kw: int) -> str:
    ids = list(range(start, stop))
    table = pa.table({"id": ids, "x": [float(i) for i in ids]})
    return _write(path, table, **kw)


def _cols(spec: str) -> list[ColumnSpec]:
    """Columns from a spec: "a b:f" is string column a, float column b."""
    return [
        ColumnSpec(c.split(":")[0], F if c.endswith(":f") else S)
        for c in spec.split()
    ]


def _reader(path: str, batch_size: int = 4, **kw: object) -> TableReader:
    return TableReader(path, "parquet", _cols("id x:f"), batch_size, **kw)


def _id_lists(batches: object) -> list[list[int]]:
    """The "id" column of numpy or tf.data batches, as ints."""
    return [[int(v) for v in np.asarray(b["id"])] for b in batches]


def test_parquet_values_and_nulls(tmp_path: Path) -> None:
    table = pa.table({
        "i": [12, None, -3], "d": [1.5, None, 3.0], "s": ["a|b", None, ""],
        "num_text": ["2.5", "", None], "b": [True, False, None],
        "unused": [1, 2, 3],
    })  # fmt: skip
    path = _write(tmp_path / "t.parquet", table)
    cols = _cols("i d s num_text:f b:f")
    (batch,) = TableReader(path, "parquet", cols, 10).batches()
    assert set(batch) == {"i", "d", "s", "num_text", "b"}
    assert list(batch["i"]) == [b"12", b"", b"-3"]
    assert list(batch["d"]) == [b"1.5", b"", b"3"]
    assert list(batch["s"]) == [b"a|b", b"", b""]
    assert batch["num_text"].dtype == np.float32
    np.testing.assert_array_equal(batch["num_text"], [2.5, np.nan, np.nan])
    np.testing.assert_array_equal(batch["b"], [1.0, 0.0, np.nan])
    (floats,) = TableReader(path, "parquet", [ColumnSpec("i", F)], 5).batches()
    np.testing.assert_array_equal(floats["i"], [12.0, np.nan, -3.0])


CSV_FIELDS = [("id", "INT64"), ("price", "DOUBLE"), ("tag", "STRING")]


@pytest.mark.parametrize(
    "case",
    [(False, ",", CSV_FIELDS), (True, "\t", CSV_FIELDS), (True, ";", ())],
)
def test_csv_values_and_nulls(tmp_path: Path, case: tuple) -> None:
    header, delimiter, fields = case
    rows = [["7", "1.25", "x|y"], ["", "", ""], ["-2", "3", "z"]]
    lines = [delimiter.join(r) for r in rows]
    if header:
        lines.insert(0, delimiter.join(["tag", "price", "id"][::-1]))
    path = tmp_path / "t.csv"
    path.write_text("\n".join(lines) + "\n")
    options = dict(csv_delimiter=delimiter, csv_with_header=header)
    cols = _cols("id price:f tag")
    reader = TableReader(
        str(path), "csv", cols, 2, csv_fields=fields, **options
    )
    assert reader.num_rows() == 3 and reader.num_batches() == 2
    first, last = reader.batches()
    assert len(first["id"]) == 2 and len(last["id"]) == 1
    assert [*first["id"], *last["id"]] == [b"7", b"", b"-2"]
    assert [*first["tag"], *last["tag"]] == [b"x|y", b"", b"z"]
    prices = np.concatenate([first["price"], last["price"]])
    np.testing.assert_array_equal(prices, [1.25, np.nan, 3.0])


def test_batches_fill_across_files(tmp_path: Path) -> None:
    b = _ids(tmp_path / "part-1.parquet", 5, 13, row_group_size=3)
    a = _ids(tmp_path / "part-0.parquet", 0, 5, row_group_size=2)
    reader = _reader(str(tmp_path / "part-*.parquet"))
    assert reader.files() == [a, b]
    assert reader.num_rows() == 13 and reader.num_batches() == 4
    expected = [list(range(i, min(i + 4, 13))) for i in range(0, 13, 4)]
    assert _id_lists(reader.batches()) == expected
    # A comma-separated list is sorted too; workers do not change the order.
    dropping = _reader(f"{b}, {a}", drop_remainder=True, num_workers=3)
    assert dropping.num_batches() == 3
    assert _id_lists(dropping.batches()) == expected[:3]


def test_dataset_dtypes_and_static_shape(tmp_path: Path) -> None:
    path = _ids(tmp_path / "a.parquet", 0, 10)
    ds = _reader(path, drop_remainder=True).dataset()
    assert ds.element_spec["id"] == tf.TensorSpec([4], tf.string)
    assert ds.element_spec["x"] == tf.TensorSpec([4], tf.float32)
    _, second = list(ds)
    assert second["id"].numpy().tolist() == [b"4", b"5", b"6", b"7"]
    np.testing.assert_array_equal(second["x"], [4.0, 5.0, 6.0, 7.0])
    assert len(list(_reader(path).dataset(num_epochs=3))) == 9
    forever = _reader(path).dataset(num_epochs=None)
    assert len(list(forever.take(7))) == 7


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("skip", [0, 2, 3, 5])
def test_skip_batches(tmp_path: Path, shuffle: bool, skip: int) -> None:
    # Resuming with skip_batches equals dropping those batches.
    _ids(tmp_path / "a.parquet", 0, 6, row_group_size=2)
    _ids(tmp_path / "b.parquet", 6, 11, row_group_size=2)
    reader = _reader(str(tmp_path / "*.parquet"), 4, shuffle=shuffle)
    full = _id_lists(reader.dataset(num_epochs=2))
    assert len(full) == 6
    assert _id_lists(reader.dataset(2, skip_batches=skip)) == full[skip:]


def test_shuffle_is_deterministic_per_seed_and_epoch(tmp_path: Path) -> None:
    _ids(tmp_path / "a.parquet", 0, 300, row_group_size=64)
    _ids(tmp_path / "b.parquet", 300, 500, row_group_size=64)
    pattern = str(tmp_path / "*.parquet")

    def order(epoch: int, seed: int = 1, **kw: object) -> list[int]:
        reader = _reader(pattern, 16, shuffle=True, seed=seed, **kw)
        batches = _id_lists(reader.batches(epoch))
        assert all(len(b) == 16 for b in batches[:-1])
        return [i for batch in batches for i in batch]

    first = order(0)
    assert sorted(first) == list(range(500)) != first
    assert order(0) == first
    assert order(0, num_workers=3) == first
    assert order(1) != first and sorted(order(1)) == list(range(500))
    assert order(0, seed=2) != first
    # The buffer (32 batches) holds all 500 rows: a batch mixes both files.
    assert min(first[:16]) < 300 <= max(first[:16])


def _error(reader: TableReader) -> str:
    with pytest.raises(DataError) as info:
        list(reader.batches())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_error_no_file_matched(tmp_path: Path) -> None:
    pattern = str(tmp_path / "nothing-*.parquet")
    assert _error(_reader(f"{pattern},")) == f"no file matches {pattern!r}"


PRICES = pa.table({"price": ["1.0"] * 20 + ["abc"] + ["2.0"] * 5})
CSV_PRICES = "".join(f"{i},{i}.5\n" for i in range(16)) + "7,abc\n"
NUMBERS = [("id", "INT64"), ("price", "DOUBLE")]
ERROR_CASES = [
    # (file, content, columns, reader options, message after the path)
    ("t.parquet", pa.table({"id": [1]}), "id x", {},
     ": column 'x' not found (columns: id)"),
    ("t.csv", "id,price\n1,2\n", "brand", {"csv_with_header": True},
     ": column 'brand' not found (columns: id, price)"),
    ("t.parquet", PRICES, "price:f", {},
     ": row 21, column 'price': cannot parse 'abc' as float"),
    ("t.csv", CSV_PRICES, "id price:f", {"csv_fields": NUMBERS},
     ": row 17, column 'price': cannot parse 'abc' as DOUBLE"),
    ("t.csv", "1,x\n2,y\nabc,z\n", "id", {"csv_fields": NUMBERS},
     ": row 3, column 'id': cannot parse 'abc' as INT64"),
    ("t.csv", "a,b\n1,2\n3,4\n5\n6,7\n", "a", {"csv_with_header": True},
     ": line 4: expected 2 fields, got 1"),
    ("t.parquet", pa.table({"id": [[1, 2]]}), "id", {},
     ": column 'id' has type list<element: int64>, which cannot be read as "
     "a string"),
]  # fmt: skip


@pytest.mark.parametrize("case", ERROR_CASES)
def test_error_names_file_column_and_row(tmp_path: Path, case: tuple) -> None:
    name, content, columns, options, expected = case
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        _write(path, content, row_group_size=7)
    dataset_type = name.split(".")[1]
    reader = TableReader(str(path), dataset_type, _cols(columns), 4, **options)
    assert _error(reader) == f"{path}{expected}"


def test_csv_skip_batches_types_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "0.csv").write_text("")
    for name, ids in (("a.csv", range(0, 7)), ("b.csv", range(7, 10))):
        lines = [f"{i}|{i % 2 == 0}|{i}.5" for i in ids]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    fields = [("id", "INT32"), ("even", "BOOLEAN"), ("x", "FLOAT")]
    options = dict(csv_fields=fields, csv_delimiter="|")
    pattern = str(tmp_path / "*.csv")
    reader = TableReader(pattern, "csv", _cols("id even x"), 3, **options)
    assert reader.num_rows() == 10 and reader.num_batches() == 4
    full = _id_lists(reader.dataset())
    assert full == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert _id_lists(reader.dataset(skip_batches=2)) == full[2:]
    (first, *_) = reader.batches()
    assert list(first["even"]) == [b"true", b"false", b"true"]
    assert list(first["x"]) == [b"0.5", b"1.5", b"2.5"]


def test_abandoned_iteration_stops_workers(tmp_path: Path) -> None:
    path = _ids(tmp_path / "a.parquet", 0, 400, row_group_size=10)
    before = threading.active_count()
    batches = _reader(path, 4, num_workers=4).batches()
    next(batches)
    assert threading.active_count() > before
    batches.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_errors_with_tf_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "train.parquet", pa.table({"price": ["1", "x"]}))
    with pytest.raises(DataError, match="train.parquet"):
        _reader(path).dataset()  # a missing column: before any tf.data
    reader = TableReader(path, "parquet", _cols("price:f"), 1)
    with pytest.raises(tf.errors.OpError) as info:
        list(reader.dataset())
    error = data_error_from_tf(info.value)
    assert isinstance(error, DataError)
    message = f"{path}: row 2, column 'price': cannot parse 'x' as float"
    assert str(error) == message
    assert data_error_from_tf(ValueError("other")) is None


def test_each_tf_data_iterator_reads_its_own_stream(tmp_path: Path) -> None:
    # One row group of many read chunks: its reader thread stays blocked
    # on a full queue while tf.data prefetches a few 4-row batches.
    path = _ids(tmp_path / "a.parquet", 0, 100_000, row_group_size=100_000)
    dataset = _reader(path, 4, num_workers=4).dataset()
    before = threading.active_count()
    first = iter(dataset)
    assert [int(v) for v in next(first)["id"].numpy()] == [0, 1, 2, 3]
    # A second iterator starts over; the first goes on where it was.
    assert _id_lists(dataset.take(2)) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert [int(v) for v in next(first)["id"].numpy()] == [4, 5, 6, 7]
    assert threading.active_count() > before
    # Dropping an unfinished iterator stops its reader threads.
    del first
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_integer_columns(tmp_path: Path) -> None:
    table = pa.table({"i": [1, None], "s": ["1", "2"], "f": [1.0, 2.0]})
    path = _write(tmp_path / "a.parquet", table)
    reader = TableReader(path, "parquet", _cols("i s f"), 2)
    assert reader.integer_columns() == {"i"}
    # A column that is text in any file is not an integer column.
    _write(tmp_path / "b.parquet", pa.table({"i": ["1|2"], "s": ["3"]}))
    glob = str(tmp_path / "*.parquet")
    assert TableReader(glob, "parquet", _cols("i s"), 2).integer_columns() == (
        set()
    )
    csv = tmp_path / "t.csv"
    csv.write_text("1,a,2.5\n")
    fields = [("i", "INT64"), ("s", "STRING"), ("f", "DOUBLE")]
    csv_reader = TableReader(
        str(csv), "csv", _cols("i s f"), 2, csv_fields=fields
    )
    assert csv_reader.integer_columns() == {"i"}


def test_null_free_integer_candidates_arrive_as_int64(tmp_path: Path) -> None:
    table = pa.table(
        {
            "i": pa.array([1, 2, 3], pa.int64()),
            "n": pa.array([1, None, 3], pa.int64()),
            "s": ["1", "2", "3"],
            "j": pa.array([4, 5, 6], pa.int32()),
            "u": pa.array([2**63, 0, 1], pa.uint64()),
        }
    )
    path = _write(tmp_path / "a.parquet", table)
    candidates = {"i", "n", "s", "u"}
    reader = TableReader(
        path, "parquet", _cols("i n s j u"), 3, int64_candidates=candidates
    )
    # "n" has a null, "s" is text, "j" is not a candidate, "u" overflows.
    assert reader.int64_columns() == {"i"}
    spec = reader.dataset().element_spec
    assert spec["i"].dtype == tf.int64
    assert {spec[c].dtype for c in "nsju"} == {tf.string}
    (batch,) = reader.batches()
    assert batch["i"].dtype == np.int64 and batch["i"].tolist() == [1, 2, 3]
    assert batch["n"].tolist() == [b"1", b"", b"3"]
    assert batch["u"].tolist() == [str(2**63).encode(), b"0", b"1"]
    (element,) = reader.dataset()
    assert element["i"].numpy().tolist() == [1, 2, 3]
    csv = tmp_path / "t.csv"
    csv.write_text("1\n2\n")
    fields = [("i", "INT64")]
    csv_reader = TableReader(
        str(csv),
        "csv",
        _cols("i"),
        2,
        csv_fields=fields,
        int64_candidates={"i"},
    )
    assert csv_reader.int64_columns() == set()  # nulls unknown in CSV
