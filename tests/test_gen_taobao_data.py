"""tools/gen_taobao_data.py: determinism, value ranges, planted structure."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gen_taobao_data import generate  # tools/ is on sys.path (conftest)

from easymatch.data import synthetic as syn

ARGS = dict(num_users=300, num_items=400, num_rows=4000, num_eval_rows=600)
FILES = [
    "train.parquet",
    "eval.parquet",
    "item.parquet",
    "item_table.txt",
    "user_table.txt",
    "pos_edge.txt",
    "hard_neg_edge.txt",
]
BUCKETS = {
    **syn.USER_BUCKETS,
    "adgroup_id": syn.NUM_ADGROUPS,
    "brand": syn.NUM_BRANDS,
    **syn.ITEM_BUCKETS,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("taobao")
    return out, generate(str(out), seed=7, seq_len=8, **ARGS)


def _rows(out: Path) -> pa.Table:
    return pa.concat_tables(
        [
            pq.read_table(out / "train.parquet"),
            pq.read_table(out / "eval.parquet"),
        ]
    )


def test_same_seed_gives_identical_bytes(data: tuple, tmp_path: Path) -> None:
    out, summary = data
    again = generate(str(tmp_path / "a"), seed=7, seq_len=8, **ARGS)
    assert again == summary
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (out / name).read_bytes()
    generate(str(tmp_path / "b"), seed=8, seq_len=8, **ARGS)
    other = (tmp_path / "b" / "train.parquet").read_bytes()
    assert other != (out / "train.parquet").read_bytes()


def test_columns_and_value_ranges(data: tuple) -> None:
    out, summary = data
    train = pq.read_table(out / "train.parquet")
    assert train.num_rows == 4000 and summary["eval_rows"] == 600
    assert pq.read_table(out / "eval.parquet").num_rows == 600
    rows = _rows(out).to_pydict()
    assert set(rows) == {
        "user_id",
        *syn.USER_BUCKETS,
        *syn.ITEM_ATTRS,
        "pid",
        "click_50_seq__adgroup_id",
        "click_50_seq__cate_id",
        "click_50_seq__brand",
        "clk",
        "sample_weight",
    }
    for name, buckets in BUCKETS.items():
        assert train.schema.field(name).type == pa.int64()
        assert 0 <= min(rows[name]) and max(rows[name]) < buckets, name
    assert max(rows["user_id"]) < ARGS["num_users"]
    assert max(rows["adgroup_id"]) < ARGS["num_items"]
    assert train.schema.field("price").type == pa.float64()
    assert min(rows["price"]) > 0 and max(rows["price"]) > 100
    assert 2 <= len(set(rows["pid"])) <= 5
    assert all("_" in p for p in rows["pid"])
    assert set(rows["clk"]) == {1}
    weights = np.array(rows["sample_weight"])
    assert 0.8 < np.mean(weights == 1.0) < 1.0
    items = pq.read_table(out / "item.parquet")
    assert items.column_names == syn.ITEM_ATTRS
    assert items["adgroup_id"].to_pylist() == list(range(ARGS["num_items"]))


def test_planted_cluster_structure(data: tuple) -> None:
    _, summary = data
    assert summary["train_in_cluster"] >= 0.7
    assert summary["eval_in_cluster"] >= 0.7
    for k in (1, 5, 50):
        assert summary[f"oracle_recall@{k}"] > 5 * summary[f"random_recall@{k}"]
    rng = np.random.default_rng(0)
    items = syn.make_items(rng, 2000, 20)
    for attr in ("cate_id", "brand", "customer"):
        clusters = defaultdict(set)
        for value, c in zip(items[attr], items["cluster"], strict=True):
            clusters[value].add(c)
        assert all(len(c) == 1 for c in clusters.values()), attr
    users = syn.make_users(rng, 5000, 20)
    for name, share in syn.INFORMATIVE_USER_COLUMNS.items():
        majority = [
            np.bincount(users[name][users["cluster"] == c]).max()
            / np.sum(users["cluster"] == c)
            for c in range(20)
        ]
        assert np.mean(majority) > share * 0.9, name


def test_sequences_hold_earlier_clicks(data: tuple) -> None:
    out, _ = data
    rows = _rows(out).to_pydict()
    items = pq.read_table(out / "item.parquet").to_pydict()
    history: dict[int, list[int]] = defaultdict(list)
    empty = 0
    for i, user in enumerate(rows["user_id"]):
        earlier = history[user][::-1][:8]
        seq = rows["click_50_seq__adgroup_id"][i]
        assert seq == "|".join(map(str, earlier))
        for attr in ("cate_id", "brand"):
            expected = "|".join(str(items[attr][j]) for j in earlier)
            assert rows[f"click_50_seq__{attr}"][i] == expected
        empty += seq == ""
        history[user].append(rows["adgroup_id"][i])
    assert 0 < empty < len(rows["user_id"]) / 2
    train_users = set(rows["user_id"][: ARGS["num_rows"]])
    assert set(rows["user_id"][ARGS["num_rows"] :]) <= train_users


def _table(path: Path) -> tuple[str, list[list[str]]]:
    header, *lines = path.read_text().splitlines()
    return header, [line.split("\t") for line in lines]


def test_sampler_tables(data: tuple) -> None:
    out, _ = data
    header, item_rows = _table(out / "item_table.txt")
    assert header == "id:int64\tweight:float\tattrs:string"
    items = pq.read_table(out / "item.parquet").to_pydict()
    assert len(item_rows) == ARGS["num_items"]
    for id_, weight, attrs in item_rows[:50]:
        values = attrs.split("\x02")
        assert [int(v) for v in values[:5]] == [
            items[k][int(id_)] for k in syn.ITEM_COLUMNS
        ]
        assert float(values[5]) == items["price"][int(id_)]
        assert 0 < float(weight) <= 1
    header, user_rows = _table(out / "user_table.txt")
    assert header == "id:int64\tweight:float"
    assert len(user_rows) == ARGS["num_users"]
    train = pq.read_table(out / "train.parquet").to_pydict()
    clicked = set(zip(train["user_id"], train["adgroup_id"], strict=True))
    header, pos = _table(out / "pos_edge.txt")
    assert header == "userid:int64\titemid:int64\tweight:float"
    assert {(int(u), int(i)) for u, i, _ in pos} == clicked
    assert sum(float(w) for _, _, w in pos) == ARGS["num_rows"]
    header, hard = _table(out / "hard_neg_edge.txt")
    assert header == "userid:int64\titemid:int64\tweight:float"
    pairs = {(int(u), int(i)) for u, i, _ in hard}
    assert len(pairs) > ARGS["num_users"] and not pairs & clicked


def test_cli_runs_as_a_script(tmp_path: Path) -> None:
    tool = Path(__file__).parents[1] / "tools" / "gen_taobao_data.py"
    args = ["--num_users", "50", "--num_items", "60", "--num_rows", "300"]
    done = subprocess.run(
        [sys.executable, str(tool), "--output_dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "eval_in_cluster:" in done.stdout
    assert "oracle_recall@5:" in done.stdout
    assert pq.read_table(tmp_path / "train.parquet").num_rows == 300
