"""docs/config.md classifies every field of every message as the code does.

The table under "## Every field" has one row per message reachable from
EasyRecConfig: supported, noted (logged, no effect) and refused fields.
The test walks the protos and fails on any field the doc leaves out,
misplaces, or names although the proto lacks it; then it checks that
the classes behave: a refused field is a one-line error naming it, a
noted one a one-line log note.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from easymatch.config import load_pipeline_config_from_text
from easymatch.config.field_classes import NOTED, REFUSED, field_classes
from easymatch.errors import ConfigError
from easymatch.protos import pipeline_pb2

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("supported", "noted", "refused")


def _doc_table() -> dict[str, dict[str, str]]:
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    section = text.split("\n## Every field\n", 1)[1].split("\n## ", 1)[0]
    table: dict[str, dict[str, str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        message = cells[0].strip("`")
        assert message not in table, f"{message} has two rows"
        table[message] = {}
        for cls, cell in zip(CLASSES, cells[1:], strict=True):
            for name in re.findall(r"`([^`]+)`", cell):
                assert name not in table[message], f"{message}.{name} twice"
                table[message][name] = cls
    return table


def _expected_row(message: str, fields: dict[str, str]) -> str:
    cols = [
        ", ".join(f"`{f}`" for f, k in fields.items() if k == cls) or "—"
        for cls in CLASSES
    ]
    return f"| `{message}` | " + " | ".join(cols) + " |"


def test_doc_classifies_every_field_as_the_code_does() -> None:
    code = field_classes(pipeline_pb2.EasyRecConfig.DESCRIPTOR)
    doc = _doc_table()
    assert sorted(doc) == sorted(code), "messages differ from the protos"
    for message, fields in code.items():
        assert doc[message] == fields, (
            f"docs/config.md row of {message} should read\n"
            + _expected_row(message, fields)
        )


def test_registry_names_only_declared_fields() -> None:
    code = field_classes(pipeline_pb2.EasyRecConfig.DESCRIPTOR)
    for key in [*NOTED, *REFUSED]:
        message, field = key.split(".")
        assert field in code[message], key
    assert not set(NOTED) & set(REFUSED)


CONFIG = """
train_input_path: "t.parquet"
model_dir: "m"
train_config {
  sparse_optimizer { adagrad_optimizer { lr: 0.1 } constant_learning_rate {} }
  dense_optimizer { adam_optimizer { lr: 0.1 } constant_learning_rate {} }
  num_steps: 5
}
data_config {
  batch_size: 4
  dataset_type: ParquetDataset
  label_fields: "clk"
  %s
}
feature_configs { id_feature { feature_name: "user_id" num_buckets: 10
  embedding_dim: 4 %s } }
feature_configs { id_feature { feature_name: "item_id"
  expression: "item:item_id" num_buckets: 10 embedding_dim: 4 } }
model_config {
  feature_groups { group_name: "user" feature_names: "user_id" }
  feature_groups { group_name: "item" feature_names: "item_id" }
  dssm {
    user_tower { input: "user" }
    item_tower { input: "item" }
    output_dim: 4
    in_batch_negative: true
  }
  metrics { recall_at_k { top_k: 1 } }
  losses { softmax_cross_entropy {} }
}
"""


def test_id_feature_without_expression_reads_its_name_under_fg_none() -> None:
    config = load_pipeline_config_from_text(CONFIG % ("", ""), "c.config")
    assert not config.feature_configs[0].id_feature.HasField("expression")
    with pytest.raises(ConfigError) as info:
        load_pipeline_config_from_text(
            CONFIG % ("fg_mode: FG_DAG", ""), "c.config"
        )
    assert str(info.value).startswith(
        "c.config:15: feature_configs[0].id_feature.expression: required"
    )


@pytest.mark.parametrize(
    "data, feature, field, why",
    [
        (
            "sample_mask_prob: 0.1",
            "",
            "data_config.sample_mask_prob",
            "masking inputs in training is not implemented",
        ),
        (
            "",
            "zch { zch_size: 10 }",
            "feature_configs[0].id_feature.zch",
            "zero-collision hashing",
        ),
        (
            "",
            'data_type: "FP16"',
            "feature_configs[0].id_feature.data_type",
            "FP32 only",
        ),
        (
            'input_fields_str: "a:INT64"',
            "",
            "data_config.input_fields_str",
            "use input_fields",
        ),
    ],
)
def test_refused_field_is_one_line_naming_it(data, feature, field, why):
    with pytest.raises(ConfigError) as info:
        load_pipeline_config_from_text(CONFIG % (data, feature), "c.config")
    message = str(info.value)
    assert "\n" not in message
    pattern = rf"c\.config:\d+: {re.escape(field)}: not supported: "
    assert re.match(pattern, message)
    assert why in message


def test_refused_field_at_its_default_is_accepted() -> None:
    load_pipeline_config_from_text(
        CONFIG % ("sample_mask_prob: 0.0", 'data_type: "FP32"'), "c.config"
    )


def test_noted_field_logs_one_line(caplog) -> None:
    text = CONFIG % (
        'pin_memory: false odps_data_quota_name: ""',
        'embedding_constraints { sharding_types: "row_wise" }',
    )
    with caplog.at_level(logging.WARNING, logger="easymatch.config"):
        load_pipeline_config_from_text(text, "c.config")
    notes = [r.getMessage() for r in caplog.records]
    assert any(
        n.startswith("c.config:13: data_config.pin_memory: accepted and ign")
        for n in notes
    ), notes
    assert any("data_config.odps_data_quota_name" in n for n in notes)
    assert any(
        "feature_configs[0].id_feature.embedding_constraints" in n
        for n in notes
    )
