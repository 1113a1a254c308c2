"""MovieLens (RecBole atomic) → leave-last-out Parquet; the ML-100k config."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import ROOT
from test_scann_index import run_tool

from easymatch.config import iter_features, load_pipeline_config
from easymatch.data.movielens import prepare
from easymatch.errors import DataError

ML_100K = ROOT.parent / "shared" / "data" / "ml-100k"
CONFIG = ROOT / "samples" / "dssm_ml100k.config"

INTER = """user_id:token\titem_id:token\trating:float\ttimestamp:float
1\t10\t4\t100
1\t30\t5\t200
1\t20\t3\t200
2\t10\t1\t50
2\t40\t2\t60
3\t20\t5\t10
"""
USER = (
    "user_id:token\tage:token\tgender:token\toccupation:token\t"
    "zip_code:token\n"
    """1\t24\tM\ttechnician\t85711
2\t53\tF\tother\tT8H1N
3\t30\tM\twriter\t12345
"""
)
ITEM = (
    "item_id:token\tmovie_title:token_seq\trelease_year:token\t"
    "class:token_seq\n"
    """10\tA\t1995\tAnimation Children's Comedy
20\tB\tunknown\tDrama
30\tC\t1977\tAction Sci-Fi
40\tD\t1990\t
50\tE\t1999\tHorror
"""
)


def write_dataset(directory, inter=INTER, user=USER, item=ITEM):
    directory.mkdir(parents=True, exist_ok=True)
    for suffix, text in ((".inter", inter), (".user", user), (".item", item)):
        (directory / f"ml-tiny{suffix}").write_text(text)
    return directory


def rows(path, *columns):
    table = pq.read_table(path)
    return [tuple(r[c] for c in columns) for r in table.to_pylist()]


def test_leave_last_out(tmp_path):
    out = tmp_path / "out"
    summary = prepare(str(write_dataset(tmp_path / "in")), str(out))
    assert summary == {
        "users": 3,
        "items": 5,
        "train_rows": 4,
        "test_users": 2,
        "test_items_not_in_train": 2,
    }
    # User 1's two ratings at t=200 are ordered by item id: 30 is last.
    # User 3 has one interaction, which stays in train.
    assert sorted(rows(out / "train.parquet", "user_id", "item_id")) == [
        (1, 10),
        (1, 20),
        (2, 10),
        (3, 20),
    ]
    assert rows(out / "test.parquet", "user_id", "item_id", "timestamp") == [
        (1, 30, 200),
        (2, 40, 60),
    ]
    assert rows(
        out / "test_gt.parquet", "user_id", "zip_code", "gt_items", "seen_items"
    ) == [(1, "85711", [30], [10, 20]), (2, "T8H1N", [40], [10])]
    assert rows(out / "item.parquet", "item_id", "release_year", "genres") == [
        (10, 1995, "Animation|Children's|Comedy"),
        (20, 0, "Drama"),
        (30, 1977, "Action|Sci-Fi"),
        (40, 1990, ""),
        (50, 1999, "Horror"),
    ]
    train = pq.read_table(out / "train.parquet").to_pylist()
    assert {r["label"] for r in train} == {1.0}
    assert (2, 53, "F", "other") in {
        (r["user_id"], r["age"], r["gender"], r["occupation"]) for r in train
    }


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            {"user": USER.replace("\tzip_code:token", "")},
            r"ml-tiny.user: line 1: field 'zip_code' missing",
        ),
        (
            {"inter": INTER.replace("2\t40\t2\t60", "2\t40\t60")},
            r"ml-tiny.inter: line 6: expected 4 tab-separated fields, got 3$",
        ),
        (
            {"inter": INTER.replace("\t50\n", "\tsoon\n")},
            r"ml-tiny.inter: line 5: timestamp 'soon' is not a number",
        ),
        (
            {"inter": INTER + "9\t10\t1\t1\n"},
            r"ml-tiny.user: no row for user_id '9'",
        ),
        (
            {"item": ITEM + "10\tF\t1990\tDrama\n"},
            r"ml-tiny.item: id '10' repeats",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, edit, message):
    with pytest.raises(DataError, match=message):
        prepare(str(write_dataset(tmp_path / "in", **edit)), str(tmp_path))


def test_cli(tmp_path):
    source = write_dataset(tmp_path / "in")
    result = run_tool(
        "prepare_movielens.py",
        f"--input_dir={source}",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr
    assert "train_rows: 4" in result.stdout.splitlines()
    (source / "ml-tiny.user").unlink()
    result = run_tool(
        "prepare_movielens.py",
        f"--input_dir={source}",
        f"--output_dir={tmp_path / 'out'}",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"easymatch: error: {source}: expected one *.user file, found 0"
    ]


def test_config_reads_the_prepared_columns(tmp_path):
    out = tmp_path / "out"
    prepare(str(write_dataset(tmp_path / "in")), str(out))
    columns = set(pq.read_schema(out / "train.parquet").names)
    config = load_pipeline_config(str(CONFIG))
    for feature in iter_features(config):
        assert set(feature.input_columns) <= columns, feature.name
    assert config.data_config.label_fields == ["label"]


def test_ml_100k(tmp_path):
    summary = prepare(str(ML_100K), str(tmp_path))
    assert summary["users"] == 943 and summary["items"] == 1682
    assert summary["test_users"] == 943
    assert summary["train_rows"] == 100_000 - 943
