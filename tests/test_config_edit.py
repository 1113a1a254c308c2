"""--edit_config_json: paths, selectors, conversions and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_config_samples import DSSM_CONFIG, line_of, replace, write

from easymatch.config import (
    edit_config,
    load_pipeline_config,
    load_pipeline_config_from_text,
)
from easymatch.errors import ConfigError
from easymatch.protos import data_pb2, pipeline_pb2, simi_pb2


@pytest.fixture
def config() -> pipeline_pb2.EasyRecConfig:
    return load_pipeline_config_from_text(DSSM_CONFIG)


def test_brief_example(config: pipeline_pb2.EasyRecConfig) -> None:
    edit_config(
        config,
        json.dumps(
            {
                "data_config.batch_size": 32,
                "train_config.num_epochs": 0,
                "train_config.num_steps": 10,
                "feature_configs[0].id_feature.num_buckets": 5,
                "data_config.negative_sampler.input_path": "x",
            }
        ),
    )
    assert config.data_config.batch_size == 32
    assert config.train_config.num_steps == 10
    assert config.feature_configs[0].id_feature.num_buckets == 5
    assert config.data_config.negative_sampler.input_path == "x"


def test_conversions(config: pipeline_pb2.EasyRecConfig) -> None:
    edit_config(
        config,
        json.dumps(
            {
                "data_config.batch_size": "64",
                "data_config.shuffle": "true",
                "data_config.dataset_type": "CsvDataset",
                "data_config.input_fields": [
                    {"input_name": "clk", "input_type": "INT64"}
                ],
                "model_config.dssm.similarity": "COSINE",
                "model_config.dssm.temperature": "0.05",
                "model_config.dssm.user_tower.mlp.hidden_units": [128, 64],
                "model_config.dssm.item_tower.mlp.hidden_units": "[128, 64]",
                "model_config.dssm.output_dim": 8.0,
                "feature_configs[4].id_feature.vocab_list[1]": "z",
            }
        ),
    )
    data = config.data_config
    assert data.batch_size == 64 and data.shuffle
    assert data.dataset_type == data_pb2.CsvDataset
    assert data.input_fields[0].input_type == data_pb2.INT64
    dssm = config.model_config.dssm
    assert dssm.similarity == simi_pb2.COSINE
    assert dssm.temperature == pytest.approx(0.05)
    assert list(dssm.user_tower.mlp.hidden_units) == [128, 64]
    assert list(dssm.item_tower.mlp.hidden_units) == [128, 64]
    assert dssm.output_dim == 8
    assert list(config.feature_configs[4].id_feature.vocab_list) == [
        "a",
        "z",
        "c",
    ]


def test_messages_and_maps(config: pipeline_pb2.EasyRecConfig) -> None:
    edit_config(
        config,
        json.dumps(
            {
                "train_config.sparse_optimizer": (
                    "{ adam_optimizer { lr: 0.01 } constant_learning_rate {} }"
                ),
                "train_config.dense_optimizer": {
                    "sgd_optimizer": {"lr": 0.1},
                    "constant_learning_rate": {},
                },
                "feature_configs[4].id_feature.vocab_dict": {"a": 2, "b": 3},
                "feature_configs[4].id_feature.vocab_list": [],
            }
        ),
    )
    train = config.train_config
    assert train.sparse_optimizer.adam_optimizer.lr == pytest.approx(0.01)
    assert train.dense_optimizer.WhichOneof("optimizer") == "sgd_optimizer"
    feature = config.feature_configs[4].id_feature
    assert dict(feature.vocab_dict) == {"a": 2, "b": 3}


def test_selectors(config: pipeline_pb2.EasyRecConfig) -> None:
    kinds = [fc.WhichOneof("feature") for fc in config.feature_configs]
    edit_config(
        config,
        json.dumps(
            {
                "feature_configs[:].id_feature.embedding_dim": 4,
                "feature_configs[0:2].raw_feature.value_dim": 3,
                "model_config.feature_groups[group_name=item].group_name": "it",
                "model_config.dssm.item_tower.input": "it",
                "feature_configs[id_feature.feature_name=pid].id_feature"
                ".hash_bucket_size": 7,
            }
        ),
    )
    # A selection of several elements never switches a oneof.
    assert [fc.WhichOneof("feature") for fc in config.feature_configs] == kinds
    for fc in config.feature_configs:
        if fc.HasField("id_feature"):
            assert fc.id_feature.embedding_dim == 4
    assert config.feature_configs[1].raw_feature.value_dim == 3
    assert config.feature_configs[5].raw_feature.value_dim == 1
    assert config.model_config.feature_groups[1].group_name == "it"
    assert config.feature_configs[2].id_feature.hash_bucket_size == 7


def test_multi_key(config: pipeline_pb2.EasyRecConfig) -> None:
    edit_config(
        config,
        json.dumps({"data_config.batch_size;data_config.num_workers": "8;3"}),
    )
    assert config.data_config.batch_size == 8
    assert config.data_config.num_workers == 3


@pytest.mark.parametrize(
    "edits, message",
    [
        (
            {"data_config.batch_sizee": 1},
            "--edit_config_json:1: data_config.batch_sizee: unknown field",
        ),
        (
            {"feature_configs[40].id_feature.num_buckets": 1},
            "--edit_config_json:1: feature_configs[40]: no such element "
            "(7 elements)",
        ),
        (
            {"data_config.batch_size": "many"},
            "--edit_config_json:1: data_config.batch_size: expected an "
            "integer, got 'many'",
        ),
        (
            {"data_config.batch_size": -3},
            "--edit_config_json:1: data_config.batch_size: -3 is out of "
            "range [0, 4294967295]",
        ),
        (
            {"data_config.dataset_type": "HiveDataset"},
            "--edit_config_json:1: data_config.dataset_type: expected one of "
            "OdpsDataset, ParquetDataset, CsvDataset, OdpsDatasetV1, "
            "KafkaDataset, got 'HiveDataset'",
        ),
        (
            {"data_config.batch_size.x": 1},
            "--edit_config_json:1: data_config.batch_size: is a list or a "
            "value, not a message",
        ),
        (
            {"data_config[0].batch_size": 1},
            "--edit_config_json:1: data_config: is not a list",
        ),
        # Valid edit, invalid result: the error points at the edit.
        (
            {"model_config.dssm.similarity": "EUCLID"},
            "--edit_config_json:1: model_config.dssm.similarity: EUCLID is "
            "not supported (TorchEasyRec computes it as an inner product); "
            "use INNER_PRODUCT or COSINE",
        ),
    ],
)
def test_errors(
    config: pipeline_pb2.EasyRecConfig, edits: dict, message: str
) -> None:
    before = config.SerializeToString()
    with pytest.raises(ConfigError) as info:
        edit_config(config, json.dumps(edits))
    assert str(info.value) == message
    assert config.SerializeToString() == before


def test_invalid_json(config: pipeline_pb2.EasyRecConfig) -> None:
    with pytest.raises(ConfigError, match="^--edit_config_json:1: invalid"):
        edit_config(config, "{'a': 1}")
    with pytest.raises(ConfigError, match="expected a JSON object"):
        edit_config(config, "[1]")


def test_error_line_in_multiline_json(
    config: pipeline_pb2.EasyRecConfig,
) -> None:
    edits = json.dumps(
        {"data_config.batch_size": 2, "model_config.dssm.temperature": 0},
        indent=2,
    )
    with pytest.raises(ConfigError) as info:
        edit_config(config, edits)
    line = line_of(edits, "temperature")
    assert str(info.value) == (
        f"--edit_config_json:{line}: model_config.dssm.temperature: must be > 0"
    )


def test_load_with_edits_repairs_and_locates(tmp_path: Path) -> None:
    text = replace(DSSM_CONFIG, "ParquetDataset", "OdpsDataset")
    path = write(tmp_path, text)
    edits = '{"data_config.dataset_type": "ParquetDataset"}'
    config = load_pipeline_config(str(path), edits)
    assert config.data_config.dataset_type == data_pb2.ParquetDataset
    # Problems outside the edited fields still point into the file.
    text = replace(text, "num_sample: 128", "num_sample: 0")
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(str(path), edits)
    line = line_of(text, "num_sample")
    assert str(info.value) == (
        f"{path}:{line}: data_config.negative_sampler.num_sample: must be > 0"
    )
