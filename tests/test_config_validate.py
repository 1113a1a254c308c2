"""Validation: each rule gives one ConfigError at the right file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from test_config_samples import (
    DSSM_CONFIG,
    line_of,
    remove_block,
    replace,
    write,
)

from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError

Edit = Callable[[str], str]


def sub(old: str, new: str) -> Edit:
    return lambda text: replace(text, old, new)


def drop(opener: str, occurrence: int = 1) -> Edit:
    return lambda text: remove_block(text, opener, occurrence)


def chain(*edits: Edit) -> Edit:
    def apply(text: str) -> str:
        for edit in edits:
            text = edit(text)
        return text

    return apply


# A second feature group holding user features, with sequence groups.
EXTRA_GROUP = """\
    feature_groups {
        group_name: "extra"
        feature_names: "user_id"
        sequence_groups {
            group_name: "s1"
            feature_names: "click_seq__item_id"
        }
        sequence_groups {
            group_name: "s2"
            feature_names: "click_seq__cate_id"
        }
        sequence_encoders {
            pooling_encoder {
                input: "s1"
            }
        }
        sequence_encoders {
            pooling_encoder {
                input: "s2"
            }
        }
    }
    dssm {"""
with_extra = sub("    dssm {", EXTRA_GROUP)
NO_SAMPLER = drop("negative_sampler {")
MLP = "hidden_units: [64, 32]\n            }\n        }\n        item_tower"

CASES = {
    # name: (edit, line needle, field, what)
    "model_dir_missing": (
        sub('model_dir: "experiments/dssm"\n', ""),
        "# DSSM",
        "model_dir",
        "required field missing",
    ),
    "sparse_optimizer_missing": (
        drop("sparse_optimizer {"),
        "train_config {",
        "train_config.sparse_optimizer",
        "required field missing",
    ),
    "learning_rate_missing": (
        sub("constant_learning_rate {\n        }\n    }\n    num", "}\n num"),
        "dense_optimizer {",
        "train_config.dense_optimizer",
        "no learning rate schedule set; use one of constant_learning_rate, "
        "exponential_decay_learning_rate, manual_step_learning_rate",
    ),
    "num_steps_and_num_epochs": (
        sub("num_epochs: 2", "num_steps: 100\n    num_epochs: 2"),
        "num_epochs",
        "train_config.num_epochs",
        "set together with num_steps; set only one",
    ),
    "neither_num_steps_nor_num_epochs": (
        sub("    num_epochs: 2\n", ""),
        "train_config {",
        "train_config",
        "set num_steps or num_epochs (one of them, > 0)",
    ),
    "model_missing": (
        drop("dssm {"),
        "model_config {",
        "model_config",
        "no model set; use dssm or dssm_v2",
    ),
    "tower_missing": (
        drop("user_tower {"),
        "dssm {",
        "model_config.dssm.user_tower",
        "required field missing",
    ),
    "output_dim_missing": (
        sub("        output_dim: 16\n", ""),
        "dssm {",
        "model_config.dssm.output_dim",
        "required field missing",
    ),
    "group_names_undefined_feature": (
        sub('feature_names: "pid"', 'feature_names: "foo"'),
        '"foo"',
        "model_config.feature_groups[0].feature_names",
        'feature "foo" is not defined in feature_configs',
    ),
    "sequence_group_names_undefined_feature": (
        sub('"click_seq__cate_id"', '"click_seq__brand"'),
        "click_seq__brand",
        "model_config.feature_groups[0].sequence_groups[0].feature_names",
        'feature "click_seq__brand" is not defined in feature_configs',
    ),
    "duplicate_feature_name": (
        sub('feature_name: "pid"', 'feature_name: "user_id"'),
        ('feature_name: "user_id"', 2),
        "feature_configs[2].id_feature.feature_name",
        'duplicate feature name "user_id"',
    ),
    "tower_input_undefined": (
        sub("input: 'item'", "input: 'items'"),
        "'items'",
        "model_config.dssm.item_tower.input",
        'group "items" is not defined in model_config.feature_groups',
    ),
    "id_feature_without_size": (
        sub("        hash_bucket_size: 20\n", ""),
        ("id_feature {", 2),
        "feature_configs[2].id_feature",
        'feature "pid" needs hash_bucket_size, num_buckets, vocab_list or '
        "vocab_dict",
    ),
    "embedding_dim_zero": (
        sub(
            "embedding_dim: 8\n    }\n}\nfeature_configs {\n    id_feature {\n"
            '        feature_name: "item_id"',
            "embedding_dim: 0\n    }\n}\nfeature_configs {\n    id_feature {\n"
            '        feature_name: "item_id"',
        ),
        "embedding_dim: 0",
        "feature_configs[2].id_feature.embedding_dim",
        "must be > 0",
    ),
    "odps_dataset": (
        sub("ParquetDataset", "OdpsDataset"),
        "dataset_type",
        "data_config.dataset_type",
        "OdpsDataset is not supported; use ParquetDataset or CsvDataset",
    ),
    "fg_bucketize": (
        sub("fg_mode: FG_DAG", "fg_mode: FG_BUCKETIZE"),
        "fg_mode",
        "data_config.fg_mode",
        "FG_BUCKETIZE is not supported; use FG_NONE, FG_NORMAL or FG_DAG",
    ),
    "csv_without_input_fields": (
        sub("ParquetDataset", "CsvDataset"),
        "dataset_type",
        "data_config.input_fields",
        "required with CsvDataset (the CSV columns, in file order)",
    ),
    "label_fields_empty": (
        sub('    label_fields: "clk"\n', ""),
        "data_config {",
        "data_config.label_fields",
        "at least one label field needed",
    ),
    "two_losses": (
        sub(
            "softmax_cross_entropy {}",
            "softmax_cross_entropy {}\n    }\n"
            "    losses {\n        softmax_cross_entropy {}",
        ),
        ("losses {", 2),
        "model_config.losses",
        "expected exactly one loss, softmax_cross_entropy; got 2",
    ),
    "no_loss": (
        drop("losses {"),
        "model_config {",
        "model_config.losses",
        "expected exactly one loss, softmax_cross_entropy; got 0",
    ),
    "label_smoothing": (
        sub(
            "softmax_cross_entropy {}",
            "softmax_cross_entropy {\n label_smoothing: 0.1\n }",
        ),
        "label_smoothing",
        "model_config.losses[0].softmax_cross_entropy.label_smoothing",
        "must be 0 (TorchEasyRec's match models ignore it)",
    ),
    "euclid": (
        sub("output_dim: 16", "output_dim: 16\n        similarity: EUCLID"),
        "EUCLID",
        "model_config.dssm.similarity",
        "EUCLID is not supported (TorchEasyRec computes it as an inner "
        "product); use INNER_PRODUCT or COSINE",
    ),
    "exporter_type_unknown": (
        sub('"latest"', '"newest"'),
        "exporter_type",
        "export_config.exporter_type",
        '"newest" is not supported; use "latest" or "best"',
    ),
    "best_exporter_without_metric": (
        sub('"latest"', '"best"'),
        "exporter_type",
        "export_config.best_exporter_metric",
        'required with exporter_type "best", e.g. "recall@5"',
    ),
    "best_exporter_metric_unknown": (
        sub('"latest"', '"best"\n    best_exporter_metric: "auc"'),
        "best_exporter_metric",
        "export_config.best_exporter_metric",
        '"auc" is not an eval metric; use one of recall@1, recall@5, '
        "softmax_cross_entropy",
    ),
    "wide_group": (
        sub(
            "group_type: DEEP\n    }\n    dssm",
            "group_type: WIDE\n    }\n    dssm",
        ),
        "WIDE",
        "model_config.feature_groups[1].group_type",
        "WIDE groups are not supported; use DEEP",
    ),
    "sequence_groups_without_encoders": (
        drop("sequence_encoders {"),
        "sequence_groups {",
        "model_config.feature_groups[0].sequence_groups",
        "sequence_groups without sequence_encoders",
    ),
    "encoders_without_sequence_groups": (
        drop("sequence_groups {"),
        "sequence_encoders {",
        "model_config.feature_groups[0].sequence_encoders",
        "sequence_encoders without sequence_groups",
    ),
    "several_sequence_groups_unnamed": (
        chain(with_extra, sub('group_name: "s2"\n', "")),
        ("sequence_groups {", 3),
        "model_config.feature_groups[2].sequence_groups[1].group_name",
        "required when a group has several sequence_groups",
    ),
    "encoder_input_undefined": (
        chain(with_extra, sub('input: "s2"', 'input: "s3"')),
        '"s3"',
        "model_config.feature_groups[2].sequence_encoders[1].pooling_encoder"
        ".input",
        'sequence group "s3" is not defined in '
        "model_config.feature_groups[2].sequence_groups",
    ),
    "encoder_input_omitted_with_several_groups": (
        chain(with_extra, sub('                input: "s2"\n', "")),
        ("pooling_encoder {", 3),
        "model_config.feature_groups[2].sequence_encoders[1].pooling_encoder"
        ".input",
        "required when a group has several sequence_groups",
    ),
    "duplicate_sequence_group_name": (
        chain(with_extra, sub('group_name: "s1"', 'group_name: "click_seq"')),
        ('group_name: "click_seq"', 2),
        "model_config.feature_groups[2].sequence_groups[0].group_name",
        'duplicate sequence group "click_seq"',
    ),
    "sequence_group_without_encoder": (
        chain(with_extra, drop("sequence_encoders {", 3)),
        ("sequence_groups {", 3),
        "model_config.feature_groups[2].sequence_groups[1]",
        'sequence group "s2" has no sequence encoder',
    ),
    "use_bn_with_use_ln": (
        sub(MLP, MLP.replace("]", "]\n use_bn: true\n use_ln: true")),
        "use_ln",
        "model_config.dssm.user_tower.mlp.use_ln",
        "use_bn and use_ln cannot both be true",
    ),
    "dropout_ratio_length": (
        sub(MLP, MLP.replace("]", "]\n dropout_ratio: [0.1, 0.1, 0.1]", 1)),
        "dropout_ratio",
        "model_config.dssm.user_tower.mlp.dropout_ratio",
        "has 3 values; expected 0, 1 or 2 (one per hidden layer)",
    ),
    "sampler_num_sample_zero": (
        sub("num_sample: 128", "num_sample: 0"),
        "num_sample",
        "data_config.negative_sampler.num_sample",
        "must be > 0",
    ),
    "group_mixes_sides": (
        sub('feature_names: "pid"', 'feature_names: "price"'),
        'feature_names: "price"',
        "model_config.feature_groups[0].feature_names",
        'feature "price" is item-side but "user_id" is user-side; the '
        "features of a group must all be on one side (item-side: an input "
        "column is in the sampler's attr_fields)",
    ),
    "group_mixes_sides_without_sampler": (
        chain(
            NO_SAMPLER,
            sub("output_dim: 16", "output_dim: 16\nin_batch_negative: true"),
            sub('feature_names: "pid"', 'feature_names: "price"'),
        ),
        'feature_names: "price"',
        "model_config.feature_groups[0].feature_names",
        'feature "price" is item-side but "user_id" is user-side; the '
        "features of a group must all be on one side "
        '(item-side: expression "item:...")',
    ),
    "no_sampler_needs_in_batch_negative": (
        NO_SAMPLER,
        "dssm {",
        "model_config.dssm.in_batch_negative",
        "must be true without a sampler in data_config, otherwise there "
        "are no negatives",
    ),
    "item_tower_on_user_group": (
        sub("input: 'item'", "input: 'user'"),
        ("input: 'user'", 2),
        "model_config.dssm.item_tower.input",
        'group "user" is user-side; the item_tower needs item-side features '
        "(item-side: an input column is in the sampler's attr_fields)",
    ),
    "bad_expression": (
        sub('expression: "context:pid"', 'expression: "pid"'),
        'expression: "pid"',
        "feature_configs[2].id_feature.expression",
        'expected "<side>:<column>" with side user, item or context, got "pid"',
    ),
    "unsorted_boundaries": (
        sub("[1.5, 10, 100]", "[1.5, 100, 10]"),
        "boundaries",
        "feature_configs[5].raw_feature.boundaries",
        "must be strictly increasing",
    ),
    "bad_normalizer": (
        sub("method=minmax,min=0,max=100", "method=minmax,mean=0"),
        "normalizer",
        "feature_configs[1].raw_feature.normalizer",
        '"mean" is not a minmax parameter; use max or min',
    ),
    "dssm_v2_without_force_base_data_group": (
        sub("    dssm {", "    dssm_v2 {"),
        "data_config {",
        "data_config.force_base_data_group",
        "must be true for dssm_v2",
    ),
    "sequence_feature_in_plain_group": (
        sub('feature_names: "pid"', 'feature_names: "click_seq__item_id"'),
        'feature_names: "click_seq__item_id"',
        "model_config.feature_groups[0].feature_names",
        'feature "click_seq__item_id" is a sequence feature; list it in '
        "sequence_groups",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_validation_error(tmp_path: Path, case: str) -> None:
    edit, at, field, what = CASES[case]
    text = edit(DSSM_CONFIG)
    path = write(tmp_path, text, "x.config")
    with pytest.raises(ConfigError) as info:
        load_pipeline_config(str(path))
    needle, occurrence = (at, 1) if isinstance(at, str) else at
    line = line_of(text, needle, occurrence)
    assert str(info.value) == f"{path}:{line}: {field}: {what}"
