"""Weighted id features and sequence raw features, alone and from a config
through the EmbeddingGroup of a DSSM."""

import numpy as np
import pytest
import tensorflow as tf
from test_features import flat

from easymatch.config import load_pipeline_config_from_text
from easymatch.errors import ConfigError
from easymatch.features import (
    FeatureSet,
    IdFeature,
    SequenceIdFeature,
    SequenceRawFeature,
)
from easymatch.features.builder import build_feature_set
from easymatch.models.builder import build_model
from easymatch.run_context import RunContext


def weights_of(outputs: dict, name: str) -> list[float]:
    """Weights of the ids >= 0, row by row (TorchEasyRec's flat form)."""
    ids = outputs[name].numpy()
    weights = outputs[f"{name}__weight"].numpy()
    return weights[ids >= 0].tolist()


def test_weighted_ids_match_torcheasyrec_fg_test():
    # tzrec/features/id_feature_test.py test_id_feature_with_weighted.
    feature = IdFeature("cate", "cate", 16, num_buckets=100000, weighted=True)
    column = tf.constant(["123:0.5", "1391:0.3", "", "12:0.9\x1d123:0.21", ""])
    outputs = feature.outputs({"cate": column})
    assert flat(outputs["cate"]) == ([123, 1391, 12, 123], [1, 1, 0, 2, 0])
    np.testing.assert_allclose(
        weights_of(outputs, "cate"), [0.5, 0.3, 0.9, 0.21], rtol=1e-6
    )
    # Padding weighs nothing; transform still returns only the ids.
    assert outputs["cate__weight"].numpy()[2].tolist() == [0.0, 0.0]
    assert feature.transform({"cate": column}).dtype == tf.int64
    assert feature.spec().weighted is True


def test_weighted_fg_encoded_ids_match_torcheasyrec_test():
    # tzrec/features/id_feature_test.py test_fg_encoded_with_weighted.
    feature = IdFeature(
        "cate",
        "cate",
        16,
        hash_bucket_size=10,
        weighted=True,
        fg_encoded=True,
        separator="\x03",
    )
    column = tf.constant(["1:1.0", "2:1.5\x033:2.0", "4:2.5"])
    outputs = feature.outputs({"cate": column})
    assert flat(outputs["cate"]) == ([1, 2, 3, 4], [1, 2, 1])
    assert weights_of(outputs, "cate") == [1.0, 1.5, 2.0, 2.5]


def test_weighted_default_and_unweighted_values_weigh_one():
    feature = IdFeature(
        "tag",
        "tag",
        4,
        vocab_list=["a", "b"],
        default_value="a",
        weighted=True,
    )
    outputs = feature.outputs({"tag": tf.constant(["b:3", "", "a\x1dx:2"])})
    assert flat(outputs["tag"]) == ([3, 2, 2, 1], [1, 1, 2])
    assert weights_of(outputs, "tag") == [3.0, 1.0, 1.0, 2.0]


def test_feature_set_transform_adds_companion_tensors():
    features = FeatureSet(
        [
            IdFeature("w", "w", 2, num_buckets=5, weighted=True),
            SequenceRawFeature("s", "s", sequence_length=2),
        ]
    )
    tensors = features.transform(
        {"w": tf.constant(["1:2"]), "s": tf.constant(["0.5"])}
    )
    assert sorted(tensors) == ["s", "s__length", "w", "w__weight"]
    assert features.input_columns() == {"w": "string", "s": "string"}


def test_sequence_raw_is_split_truncated_defaulted_and_zero_padded():
    feature = SequenceRawFeature(
        "seq__xy",
        "seq__xy",
        sequence_length=3,
        sequence_delim="|",
        value_dim=2,
        separator=",",
        default_value="7,8",
        normalizer="method=minmax,min=0,max=10",
    )
    column = tf.constant(["1,2|3,4|5,6|9,9", "", "|10,0"])
    outputs = feature.outputs({"seq__xy": column})
    np.testing.assert_allclose(
        outputs["seq__xy"].numpy(),
        [
            [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]],
            [[0.0, 0.0]] * 3,
            [[0.7, 0.8], [1.0, 0.0], [0.0, 0.0]],
        ],
        rtol=1e-6,
    )
    assert outputs["seq__xy__length"].numpy().tolist() == [3, 0, 2]
    assert feature.column_kind() == "string"


def test_sequence_raw_boundaries_align_with_sequence_ids():
    kwargs = dict(sequence_length=4, sequence_delim="|")
    price = SequenceRawFeature(
        "seq__price", "seq__price", boundaries=[1, 5], embedding_dim=2, **kwargs
    )
    item = SequenceIdFeature(
        "seq__item", "seq__item", 2, num_buckets=100, **kwargs
    )
    ids = price.transform({"seq__price": tf.constant(["1|3||9", "", "0.5"])})
    # An empty element takes the default "0", bucket 0, and keeps its slot.
    assert ids.numpy().tolist() == [[1, 1, 0, 2], [-1] * 4, [0, -1, -1, -1]]
    items = item.transform({"seq__item": tf.constant(["4|5||6", "", "7"])})
    assert (items.numpy() >= 0).tolist() == (ids.numpy() >= 0).tolist()
    assert price.spec().table.num_embeddings == 3


def test_sequence_raw_boundaries_need_value_dim_one():
    with pytest.raises(ValueError, match="value_dim 1"):
        SequenceRawFeature(
            "s",
            "s",
            sequence_length=2,
            value_dim=2,
            boundaries=[1.0],
            embedding_dim=2,
        )


def _feature(kind: str, body: str) -> str:
    return f"feature_configs {{ {kind} {{ {body} }} }}\n"


CONFIG = (
    """
train_input_path: "x.parquet"
model_dir: "m"
train_config {
  sparse_optimizer { sgd_optimizer { lr: 0.1 } constant_learning_rate {} }
  dense_optimizer { sgd_optimizer { lr: 0.1 } constant_learning_rate {} }
  num_steps: 1
}
data_config {
  batch_size: 2 dataset_type: ParquetDataset fg_mode: FG_DAG
  label_fields: "clk"
}
"""
    + _feature(
        "id_feature",
        'feature_name: "user_id" expression: "user:user_id" '
        "num_buckets: 10 embedding_dim: 8",
    )
    + _feature(
        "id_feature",
        'feature_name: "tags" expression: "user:tags" hash_bucket_size: 50 '
        'embedding_dim: 4 weighted: true pooling: "mean"',
    )
    + _feature(
        "id_feature",
        'feature_name: "item_id" expression: "item:item_id" '
        "num_buckets: 10 embedding_dim: 4",
    )
    + _feature(
        "sequence_raw_feature",
        'feature_name: "dwell" expression: "user:dwell" sequence_length: 3 '
        'sequence_delim: ";"',
    )
    + """
feature_configs { sequence_feature {
  sequence_name: "click" sequence_length: 2 sequence_delim: "|"
  features { id_feature { feature_name: "item_id" expression: "item:item_id"
    num_buckets: 10 embedding_dim: 4 } }
  features { raw_feature { feature_name: "price" expression: "item:price" } }
  features { raw_feature { feature_name: "level" expression: "item:price"
    boundaries: [1, 10] embedding_dim: 2 } }
} }
model_config {
  feature_groups {
    group_name: "user" feature_names: "user_id" feature_names: "tags"
    sequence_groups { group_name: "click" feature_names: "click__item_id"
      feature_names: "click__price" feature_names: "click__level" }
    sequence_groups { group_name: "dwell" feature_names: "dwell" }
    sequence_encoders { pooling_encoder { input: "click" } }
    sequence_encoders { pooling_encoder { input: "dwell"
      pooling_type: "sum" } }
  }
  feature_groups { group_name: "item" feature_names: "item_id" }
  dssm {
    user_tower { input: "user" } item_tower { input: "item" }
    output_dim: 4 in_batch_negative: true
  }
  metrics { recall_at_k { top_k: 1 } }
  losses { softmax_cross_entropy {} }
}
"""
)

COLUMNS = {
    "user_id": tf.constant(["1", "2"]),
    "tags": tf.constant(["a:2\x1db:1", ""]),
    "dwell": tf.constant(["1.5;2.5", ""]),
    "click__item_id": tf.constant(["3|4|5", ""]),
    "click__price": tf.constant(["0.5|20|7", ""]),
    "click__level": tf.constant(["0.5|20|7", ""]),
    "item_id": tf.constant(["3", "4"]),
}


def test_config_with_weighted_and_sequence_raw_features_runs_a_dssm():
    config = load_pipeline_config_from_text(CONFIG)
    feature_set = build_feature_set(config)
    assert type(feature_set["dwell"]) is SequenceRawFeature
    assert type(feature_set["click__level"]) is SequenceRawFeature
    tensors = feature_set.transform(COLUMNS)
    assert tensors["click__price"].shape == (2, 2, 1)
    assert tensors["dwell__length"].numpy().tolist() == [2, 0]
    specs = RunContext(config, feature_set=feature_set).specs
    model = build_model(specs.model)
    dims = model.user_embedding.group_feature_dims("user")
    assert dims == {
        "user_id": 8,
        "tags": 4,
        "user_seq_encoder_0": 4 + 1 + 2,
        "user_seq_encoder_1": 1,
    }
    group = model.user_embedding(tensors)["user"].numpy()
    # Row 0: dwell sums to 4; mean click price over 2 kept positions.
    assert group[0, -1] == pytest.approx(4.0)
    assert group[0, 8 + 4 + 4] == pytest.approx((0.5 + 20) / 2)
    # Row 1 has no tags, clicks or dwell: zeros, not NaN.
    np.testing.assert_array_equal(group[1, 8:], 0.0)
    outputs = model(tensors)
    assert tuple(outputs["similarity"].shape) == (2, 2)


def test_fg_none_sequence_raw_with_boundaries_reads_bucket_ids():
    text = CONFIG.replace("fg_mode: FG_DAG", "fg_mode: FG_NONE")
    feature_set = build_feature_set(load_pipeline_config_from_text(text))
    level = feature_set["click__level"]
    assert type(level) is SequenceIdFeature
    ids = level.transform({"click__level": tf.constant(["2|0|1", ""])})
    assert ids.numpy().tolist() == [[2, 0], [-1, -1]]


def test_weighted_sequence_id_feature_is_a_config_error():
    text = CONFIG.replace(
        'feature_name: "item_id" expression: "item:item_id"\n'
        "    num_buckets: 10 embedding_dim: 4",
        'feature_name: "item_id" expression: "item:item_id"\n'
        "    num_buckets: 10 embedding_dim: 4 weighted: true",
    )
    assert text != CONFIG
    with pytest.raises(ConfigError, match="weighted ids are not supported"):
        build_feature_set(load_pipeline_config_from_text(text))


@pytest.mark.parametrize("fg_mode, expected", [("FG_DAG", 0.5), ("FG_NONE", 5)])
def test_normalizer_applies_only_when_easymatch_runs_fg(fg_mode, expected):
    text = CONFIG.replace("fg_mode: FG_DAG", f"fg_mode: {fg_mode}").replace(
        'feature_name: "price" expression: "item:price"',
        'feature_name: "price" expression: "item:price" '
        'normalizer: "method=minmax,min=0,max=10"',
    )
    feature_set = build_feature_set(load_pipeline_config_from_text(text))
    values = feature_set["click__price"].transform(
        {"click__price": tf.constant(["5"])}
    )
    assert values.numpy().ravel().tolist() == [expected]
