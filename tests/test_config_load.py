"""Loading: valid configs, parse errors as one-line file:line messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_config_samples import DSSM_CONFIG, line_of, replace, write

from easymatch.config import (
    load_pipeline_config,
    load_pipeline_config_from_text,
)
from easymatch.errors import ConfigError
from easymatch.protos import data_pb2, model_pb2, simi_pb2

TZREC_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "tzrec_configs"


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(str(path))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    return message


def test_valid_config_values(tmp_path: Path) -> None:
    config = load_pipeline_config(str(write(tmp_path, DSSM_CONFIG)))
    data = config.data_config
    assert data.dataset_type == data_pb2.ParquetDataset
    assert data.fg_mode == data_pb2.FG_DAG
    assert data.negative_sampler.attr_delimiter == "\x02"
    assert data.fg_encoded_multival_sep == "\x03"
    group = config.model_config.feature_groups[0]
    assert group.group_type == model_pb2.DEEP
    dssm = config.model_config.dssm
    assert dssm.similarity == simi_pb2.INNER_PRODUCT
    assert list(dssm.user_tower.mlp.hidden_units) == [64, 32]
    assert dssm.user_tower.mlp.activation == "nn.ReLU"
    assert config.train_config.save_checkpoints_steps == 1000
    assert config.export_config.metric_larger_is_better


def test_implied_values_are_made_explicit() -> None:
    text = DSSM_CONFIG.replace('eval_input_path: "data/eval/*.parquet"\n', "")
    text = replace(text, 'group_name: "click_seq"\n', "")
    text = replace(text, 'input: "click_seq"\n', "")
    text = replace(
        text,
        'exporter_type: "latest"',
        'exporter_type: "latest"\n    metric_bigger: false',
    )
    config = load_pipeline_config_from_text(text)
    assert config.HasField("eval_input_path")
    assert config.eval_input_path == ""
    group = config.model_config.feature_groups[0]
    assert group.sequence_groups[0].group_name == "user"
    assert group.sequence_encoders[0].pooling_encoder.input == "user"
    assert not config.export_config.metric_larger_is_better
    assert config.IsInitialized()


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.config: cannot read"):
        load_pipeline_config(str(tmp_path / "missing.config"))


@pytest.mark.parametrize(
    "old, new, at, field, what",
    [
        (
            "batch_size: 256",
            "batch_sizee: 256",
            "batch_sizee",
            "data_config.batch_sizee",
            "unknown field",
        ),
        (
            "dataset_type: ParquetDataset",
            "dataset_type: HiveDataset",
            "HiveDataset",
            "data_config.dataset_type",
            "unknown value HiveDataset; expected one of OdpsDataset, "
            "ParquetDataset, CsvDataset, OdpsDatasetV1, KafkaDataset",
        ),
        (
            "batch_size: 256",
            'batch_size: "big"',
            "batch_size",
            "data_config.batch_size",
            'expected an integer, got "big"',
        ),
        (
            "num_sample: 128",
            "num_sample: -1",
            "num_sample",
            "data_config.negative_sampler.num_sample",
            "value out of range: -1",
        ),
        (
            'label_fields: "clk"',
            "label_fields: 3",
            "label_fields",
            "data_config.label_fields[0]",
            "expected a quoted string, got '3'",
        ),
        (
            "hidden_units: [64, 32]\n            }\n        }\n        item",
            'hidden_units: [64, "x"]\n            }\n        }\n        item',
            '"x"',
            "model_config.dssm.user_tower.mlp.hidden_units[1]",
            'expected an integer, got "x"',
        ),
        (
            "output_dim: 16",
            "output_dim: 16\n        output_dim: 8",
            "output_dim: 8",
            "model_config.dssm.output_dim",
            "set twice",
        ),
        (
            "    num_workers: 2\n",
            "    num_workers: 2\n    negative_sampler_v2 {}\n",
            "negative_sampler {",
            "data_config.negative_sampler",
            'conflicts with "negative_sampler_v2": set only one field of '
            'oneof "sampler"',
        ),
        (
            "        softmax_cross_entropy {}",
            "        binary_cross_entropy {}",
            "binary_cross_entropy",
            "model_config.losses[0].binary_cross_entropy",
            "unknown field",
        ),
        (
            "adam_optimizer {\n            lr: 0.001",
            "rmsprop_optimizer {\n            lr: 0.001",
            "rmsprop_optimizer",
            "train_config.dense_optimizer.rmsprop_optimizer",
            "unknown field",
        ),
        (
            '    raw_feature {\n        feature_name: "age"',
            '    combo_feature {\n        feature_name: "age"',
            "combo_feature",
            "feature_configs[1].combo_feature",
            "unknown field",
        ),
        (
            "            top_k: 5",
            "            top_k: 5\n            }\n        auc {",
            "auc {",
            "model_config.metrics[1].auc",
            "unknown field",
        ),
    ],
)
def test_parse_errors(
    tmp_path: Path, old: str, new: str, at: str, field: str, what: str
) -> None:
    text = replace(DSSM_CONFIG, old, new)
    message = load_error(tmp_path, text)
    line = line_of(text, at)
    assert message == f"{tmp_path / 'dssm.config'}:{line}: {field}: {what}"


def test_parse_error_with_source_name() -> None:
    text = replace(DSSM_CONFIG, "num_workers: 2", "num_workerz: 2")
    with pytest.raises(ConfigError) as info:
        load_pipeline_config_from_text(text, "samples/x.config")
    line = line_of(text, "num_workerz")
    assert str(info.value) == (
        f"samples/x.config:{line}: data_config.num_workerz: unknown field"
    )


def test_unclosed_block_is_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_pipeline_config_from_text("model_config {\n  feature_groups {")
    assert str(info.value).startswith("<string>:2: model_config.")
    assert "\n" not in str(info.value)


def _ter_example(name: str) -> str:
    # TorchEasyRec's own examples, unchanged, in ../shared (never skipped).
    return (TZREC_CONFIGS / f"examples_{name}").read_text()


@pytest.mark.parametrize(
    "name", ["dssm_taobao.config", "dssm_v2_taobao.config"]
)
def test_torcheasyrec_examples_parse_unchanged(name: str) -> None:
    text = _ter_example(name)
    with pytest.raises(ConfigError) as info:
        load_pipeline_config_from_text(text, name)
    # Everything parses and validates except the ODPS dataset.
    line = line_of(text, "dataset_type: OdpsDataset")
    assert str(info.value) == (
        f"{name}:{line}: data_config.dataset_type: OdpsDataset is not "
        "supported; use ParquetDataset or CsvDataset"
    )
    config = load_pipeline_config_from_text(
        text, name, '{"data_config.dataset_type": "ParquetDataset"}'
    )
    assert len(config.feature_configs) == 17
