"""tools/create_mock_data.py on TorchEasyRec's own configs.

The configs are read at ROOT.parent/"shared"/"tzrec_configs" (never copied
into the repository); a missing directory fails the test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from easymatch.config import iter_features, load_pipeline_config
from easymatch.data.samplers.builder import build_sampler
from easymatch.errors import ConfigError
from easymatch.protos import data_pb2

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT.parent / "shared" / "tzrec_configs"


def config_path(name: str) -> Path:
    path = CONFIGS / f"{name}.config"
    assert path.exists(), f"{path} is missing (../shared/tzrec_configs)"
    return path


def create(name: str, out: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        str(ROOT / "tools" / "create_mock_data.py"),
        "--pipeline_config_path",
        str(config_path(name)),
        "--output_dir",
        str(out),
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=False)


DATA_FILES = [
    "train.parquet",
    "eval.parquet",
    "item_table.txt",
    "user_table.txt",
    "pos_edge.txt",
    "hard_neg_edge.txt",
    "data/test/tokenizer.json",
]


def test_fg_config_with_hard_negatives_and_tokenizer(tmp_path: Path) -> None:
    name = "tests_configs_dssm_fg_hard_negative_mock"
    run = create(name, tmp_path / "a", "--num_rows", "64", "--num_steps", "3")
    assert run.returncode == 0, run.stderr
    out = tmp_path / "a"
    assert run.stdout.strip() == str(out / "pipeline.config")
    config = load_pipeline_config(str(out / "pipeline.config"))
    assert config.train_input_path == str(out / "train.parquet")
    assert config.eval_input_path == str(out / "eval.parquet")
    assert config.model_dir == str(out / "model")
    assert config.train_config.num_steps == 3
    assert not config.train_config.HasField("num_epochs")
    sampler = config.data_config.hard_negative_sampler
    assert sampler.item_input_path == str(out / "item_table.txt")
    assert sampler.user_input_path == str(out / "user_table.txt")
    assert sampler.hard_neg_edge_input_path == str(out / "hard_neg_edge.txt")
    tokenize = config.feature_configs[-1].tokenize_feature
    assert tokenize.vocab_file == str(out / "data/test/tokenizer.json")
    train = pq.read_table(out / "train.parquet")
    assert train.num_rows == 64
    columns = {c for info in iter_features(config) for c in info.input_columns}
    assert columns | {"clk"} == set(train.column_names)
    # every item of the data is a row of the sampler's item table, with the
    # same attributes
    items = {}
    for line in (out / "item_table.txt").read_text().split("\n")[1:-1]:
        item_id, _, attrs = line.split("\t")
        items[item_id] = attrs.split("\x02")
    rows = train.to_pylist()
    for row in rows[:10]:
        attrs = items[str(row["item_id"])]
        assert attrs[0] == str(row["item_id"])
        assert attrs[1] == str(row["item_id_1"])
        assert attrs[-1] == row["title"]
    sequence = rows[0]["click_50_seq__item_id"].split("|")
    assert 1 <= len(sequence) <= 50
    assert all(item in items for item in sequence)
    sampler_object = build_sampler(config, training=True)
    assert sampler_object.has_hard
    # the same seed gives the same bytes
    again = create(name, tmp_path / "b", "--num_rows", "64", "--num_steps", "3")
    assert again.returncode == 0, again.stderr
    for file in DATA_FILES:
        assert (out / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
    other = create(name, tmp_path / "c", "--num_rows", "64", "--seed", "1")
    assert other.returncode == 0, other.stderr
    assert (out / "train.parquet").read_bytes() != (
        tmp_path / "c" / "train.parquet"
    ).read_bytes()


def test_fg_none_config_columns_are_feature_names(tmp_path: Path) -> None:
    run = create("tests_configs_dssm_mock", tmp_path, "--num_rows", "32")
    assert run.returncode == 0, run.stderr
    config = load_pipeline_config(str(tmp_path / "pipeline.config"))
    assert config.train_config.num_epochs == 8  # no --num_steps
    train = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert train[0]["user_raw_1"] in range(5)  # bucket ids under FG_NONE
    assert len(train[0]["user_raw_3"].split("\x03")) == 4
    assert 0 <= train[0]["user_id_2"] < 1000


def test_odps_examples_are_refused_for_odps_and_run_as_parquet(tmp_path):
    name = "examples_dssm_taobao"
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(str(config_path(name)))
    assert str(info.value) == (
        f"{config_path(name)}:25: data_config.dataset_type: OdpsDataset is "
        "not supported; use ParquetDataset or CsvDataset"
    )
    run = create(name, tmp_path, "--num_rows", "64", "--num_steps", "2")
    assert run.returncode == 0, run.stderr
    config = load_pipeline_config(str(tmp_path / "pipeline.config"))
    assert config.data_config.dataset_type == data_pb2.ParquetDataset
    assert config.data_config.negative_sampler.input_path == str(
        tmp_path / "item_table.txt"
    )


def test_train_eval_on_an_empty_train_input_path_is_one_line() -> None:
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(config_path("tests_configs_dssm_mock")),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"easymatch: error: {config_path('tests_configs_dssm_mock')}: "
        "train_input_path: empty; set it in the config or pass "
        "--train_input_path"
    )
