"""Sampler tables and the alias table: parsing, lookups, error lines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from easymatch.data.samplers.alias import AliasTable
from easymatch.data.samplers.edges import check_user_table, read_edge_table
from easymatch.data.samplers.ids import IdIndex
from easymatch.data.samplers.tables import TextColumn, read_item_table
from easymatch.errors import DataError

ITEM = "id:int64\tweight:float\tattrs:string"
EDGE = "userid:int64\titemid:int64\tweight:float"
FIELDS = ["cate", "price"]


def _write(path: Path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def _items(tmp_path: Path, rows: list[str] | None = None) -> str:
    if rows is None:
        rows = [f"{i}\t{i + 1}\tc{i}:{i * 1.5}" for i in range(5)]
    return _write(tmp_path / "item.txt", ITEM, rows)


def _read(path: str, delimiter: str = "\t"):
    return read_item_table(path, FIELDS, ":", delimiter)


def test_item_table_columns(tmp_path: Path) -> None:
    items = _read(_items(tmp_path))
    assert len(items) == 5
    np.testing.assert_array_equal(items.weights, [1, 2, 3, 4, 5])
    rows = np.array([4, 0])
    assert items.ids.take(rows).tolist() == [b"4", b"0"]
    assert items.column("cate").take(rows).tolist() == [b"c4", b"c0"]
    np.testing.assert_allclose(items.floats("price"), [0, 1.5, 3, 4.5, 6])


def test_string_ids_field_delimiter_and_empty_attr(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "item.csv",
        "id:string,weight:float,attrs:string",
        ["a7,1,x:", "b8,2,:2.5"],
    )
    items = _read(path, ",")
    assert not items.index.integer
    rows = items.index.lookup(np.array([b"b8", b"zz", b""], object), "i")
    np.testing.assert_array_equal(rows, [1, -1, -1])
    assert items.column("cate").take(np.array([1, 0])).tolist() == [b"", b"x"]
    price = items.floats("price")
    assert np.isnan(price[0]) and price[1] == 2.5


@pytest.mark.parametrize("long", [False, True])
def test_text_column_packed(long: bool) -> None:
    values = ["a", "", "xyz\x00", "é" * (60 if long else 2)]
    column = TextColumn(pa.array(values))
    assert (column.values.dtype == object) == long
    rows = np.array([3, 0, 1, 3, 2])
    blob, starts, lengths = column.packed(rows)
    blob = blob.item()
    got = [blob[s : s + n] for s, n in zip(starts, lengths, strict=True)]
    assert got == [values[r].encode() for r in rows]


def test_id_lookup_dense_and_sparse_agree() -> None:
    rng = np.random.default_rng(0)
    for top in (50, 10**15):
        keys = rng.choice(top, size=40, replace=False).astype(np.int64)
        index = IdIndex(keys, integer=True)
        assert (index._dense is not None) == (top == 50)
        probe = np.concatenate([keys[::-1], [top + 1, -3]])
        expected = [*range(39, -1, -1), -1, -1]
        np.testing.assert_array_equal(index.rows(probe), expected)
        text = np.array([str(k).encode() for k in probe] + [b""], object)
        np.testing.assert_array_equal(
            index.lookup(text, "item_id"), [*expected, -1]
        )


def test_non_integer_batch_id_names_column() -> None:
    index = IdIndex(np.arange(3), integer=True)
    with pytest.raises(DataError, match=r"column 'item_id'.*'x1'"):
        index.lookup(np.array([b"1", b"x1"], object), "item_id")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["0\t1\ta:1", "1\t2", "2\t1\tb:2"], r"line 3: expected 3 columns"),
        (["0\t1\ta:1", "1\tabc\tb:2"], r"line 3: weight 'abc' is not a num"),
        (["0\t1\ta:1", "1\t-2\tb:2"], r"line 3: weight '-2' must be >= 0"),
        (["0\t1\ta:1", "1\tnan\tb:2"], r"line 3: weight 'nan' must be >= 0"),
        (["0\t1\ta:1", "x\t1\tb:2"], r"line 3: id 'x' is not an integer"),
        (["0\t1\ta:1", "1\t1\tb:2:3"], r"line 3: attrs has 3 values"),
        (["0\t1\ta:1", "1\t1\tb:2", "0\t1\tc:3"], r"line 4: id '0' appears"),
        (["0\t1\ta:1", "", "1\t1\tb:2"], r"line 3: id '' is not an integer"),
        (["0\t0\ta:1"], r"every item weight is 0"),
        ([], r"no rows"),
    ],
)
def test_item_table_errors_name_file_and_line(
    tmp_path: Path, rows: list[str], message: str
) -> None:
    path = _items(tmp_path, rows)
    with pytest.raises(DataError, match=f"^{path}: .*" + message):
        _read(path)


def test_bad_header_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "item.txt", "0\t1\ta:1", ["1\t1\tb:2"])
    with pytest.raises(DataError, match=f"^{path}: line 1: expected a header"):
        _read(path)
    missing = str(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=f"^{missing}: sampler table not found"):
        _read(missing)


def test_non_utf8_line(tmp_path: Path) -> None:
    path = tmp_path / "item.txt"
    path.write_bytes(f"{ITEM}\n0\t1\ta:1\n1\t1\t\xc4\xe3:2\n".encode("latin-1"))
    with pytest.raises(DataError, match=f"^{path}: line 3: not UTF-8 text$"):
        _read(str(path))


def test_bad_float_attr_names_line(tmp_path: Path) -> None:
    items = _read(_items(tmp_path, ["0\t1\ta:1", "1\t1\tb:cheap"]))
    with pytest.raises(DataError, match=r"item.txt: line 3: attr 'price'"):
        items.floats("price")


def test_edge_table_groups_users_in_file_order(tmp_path: Path) -> None:
    items = _read(_items(tmp_path))
    path = _write(
        tmp_path / "edge.txt",
        EDGE,
        ["7\t3\t1", "5\t1\t1", "7\t0\t1", "7\t99\t1", "7\t2\t1"],
    )
    edges = read_edge_table(path, "\t", items, require_items=False)
    users = edges.users.rows(np.array([5, 7, 6]))
    assert users[2] == -1
    for user, expected in zip(users[:2], [[1], [3, 0, 2]], strict=True):
        start = edges.starts[user]
        got = edges.items[start : start + edges.counts[user]]
        np.testing.assert_array_equal(got, expected)
    with pytest.raises(DataError, match=f"^{path}: line 5: itemid '99'"):
        read_edge_table(path, "\t", items, require_items=True)


def test_user_table_errors(tmp_path: Path) -> None:
    header = "id:int64\tweight:float"
    check_user_table(_write(tmp_path / "u.txt", header, ["1\t1"]), "\t")
    path = _write(tmp_path / "bad.txt", header, ["1\t1", "2\t1\t3"])
    with pytest.raises(DataError, match=f"^{path}: line 3: expected 2"):
        check_user_table(path, "\t")


def test_alias_table_is_exact() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        weights = rng.random(n) * rng.choice([0.0, 1.0, 50.0], n)
        if weights.sum() == 0:
            weights[0] = 1.0
        alias = AliasTable(weights)
        np.testing.assert_allclose(
            alias.probabilities(), weights / weights.sum(), atol=1e-12
        )
        assert not np.any(alias.prob[weights == 0])


def test_alias_draw_frequencies() -> None:
    weights = np.array([1.0, 2, 3, 4, 5, 0])
    draws = AliasTable(weights).draw(np.random.default_rng(0), 200_000)
    counts = np.bincount(draws, minlength=6)
    expected = 200_000 * weights / weights.sum()
    assert counts[5] == 0
    chi2 = ((counts[:5] - expected[:5]) ** 2 / expected[:5]).sum()
    assert chi2 < 18.47  # 4 degrees of freedom, p = 0.001
