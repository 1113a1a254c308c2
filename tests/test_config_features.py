"""Feature names, sides and input columns (iter_features, feature_name)."""

from __future__ import annotations

import pytest
from test_config_samples import DSSM_CONFIG, remove_block, replace

from easymatch.config import (
    feature_name,
    iter_features,
    load_pipeline_config_from_text,
)
from easymatch.protos import feature_pb2

NO_SAMPLER = replace(
    remove_block(DSSM_CONFIG, "negative_sampler {"),
    "output_dim: 16",
    "output_dim: 16\n        in_batch_negative: true",
)


def table(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    config = load_pipeline_config_from_text(text)
    return [(name, side, cols) for name, side, cols, _ in iter_features(config)]


def test_fg_mode_columns_and_sampler_sides() -> None:
    assert table(DSSM_CONFIG) == [
        ("user_id", "user", ("user_id",)),
        ("age", "user", ("age",)),
        ("pid", "user", ("pid",)),
        ("item_id", "item", ("item_id",)),
        ("cate_id", "item", ("cate_id",)),
        ("price", "item", ("price",)),
        ("click_seq__item_id", "user", ("click_seq__item_id",)),
        ("click_seq__cate_id", "user", ("click_seq__cate_id",)),
    ]


def test_fg_none_reads_the_feature_name() -> None:
    text = replace(DSSM_CONFIG, "fg_mode: FG_DAG", "fg_mode: FG_NONE")
    text = replace(text, 'expression: "user:user_id"', 'expression: "user:uid"')
    rows = table(text)
    assert rows[0] == ("user_id", "user", ("user_id",))
    assert rows[6] == ("click_seq__item_id", "user", ("click_seq__item_id",))


def test_sides_without_sampler_follow_the_expression() -> None:
    text = replace(NO_SAMPLER, '"user:age"', '"context:age"')
    sides = {name: side for name, side, _ in table(text)}
    assert sides == {
        "user_id": "user",
        "age": "user",
        "pid": "user",
        "item_id": "item",
        "cate_id": "item",
        "price": "item",
        # Grouped sequences are user history even with "item:" inputs.
        "click_seq__item_id": "user",
        "click_seq__cate_id": "user",
    }


def test_sequence_info() -> None:
    config = load_pipeline_config_from_text(DSSM_CONFIG)
    infos = {info.name: info for info in iter_features(config)}
    sub = infos["click_seq__cate_id"]
    assert sub.is_sequence and sub.is_id
    assert (sub.sequence_name, sub.sequence_length, sub.sequence_delim) == (
        "click_seq",
        50,
        "|",
    )
    assert sub.proto.feature_name == "cate_id"
    assert sub.path == "feature_configs[6].sequence_feature.features[1]" + (
        ".id_feature"
    )
    assert not infos["price"].is_sequence and not infos["price"].is_id


def test_standalone_sequence_feature() -> None:
    text = replace(
        DSSM_CONFIG,
        "feature_configs {\n    sequence_feature {",
        "feature_configs {\n    sequence_id_feature {\n"
        '        feature_name: "tags"\n        expression: "user:tags"\n'
        "        hash_bucket_size: 10\n        embedding_dim: 4\n"
        "        sequence_length: 5\n    }\n}\n"
        "feature_configs {\n    sequence_feature {",
    )
    config = load_pipeline_config_from_text(text)
    tags = next(i for i in iter_features(config) if i.name == "tags")
    assert tags.input_columns == ("tags",)
    assert tags.is_sequence and tags.sequence_name is None
    assert (tags.sequence_length, tags.sequence_delim) == (5, ";")


def test_feature_name() -> None:
    config = load_pipeline_config_from_text(DSSM_CONFIG)
    names = [feature_name(fc) for fc in config.feature_configs]
    assert names == [
        "user_id",
        "age",
        "pid",
        "item_id",
        "cate_id",
        "price",
        "click_seq",
    ]
    sub = config.feature_configs[6].sequence_feature.features[0]
    assert feature_name(sub) == "item_id"
    with pytest.raises(ValueError):
        feature_name(feature_pb2.FeatureConfig())
