"""raw_feature `mlp {}`: TorchEasyRec's MLPEmbedding of a dense value.

tzrec/modules/dense_embedding_collection.py: one weight [value_dim, D]
per feature, no bias, no activation, initialised randn · sqrt(2 / (V + D));
the group sees value @ W. Inside a sequence it has no effect (tzrec's
RawFeature has no dense embedding for sequences).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from easymatch.config import load_pipeline_config_from_text
from easymatch.errors import ConfigError
from easymatch.features.builder import build_feature_set
from easymatch.layers.embedding_group import EmbeddingGroup
from easymatch.protos import feature_pb2
from easymatch.specs import FeatureSpec, GroupSpec

ROOT = Path(__file__).resolve().parent.parent
MLPEMB = (
    ROOT.parent
    / "shared"
    / "tzrec_configs"
    / "tests_configs_dssm_v2_mlpemb_fg_mock.config"
)


def _mlpemb_text() -> str:
    """The config without its tokenize feature (tested elsewhere)."""
    text = MLPEMB.read_text(encoding="utf-8")
    start = text.index("feature_configs {\n    tokenize_feature")
    end = text.index("model_config {")
    text = text[:start] + text[end:]
    return text.replace('        feature_names: "item_title"\n', "")


FEATURES = [
    FeatureSpec.dense("price", value_dim=1, mlp_dim=3),
    FeatureSpec.dense("vec", value_dim=2, mlp_dim=4),
    FeatureSpec.dense("raw", value_dim=2),
]
GROUPS = [GroupSpec("item", ("price", "vec", "raw"))]


def test_group_projects_each_mlp_feature_with_its_own_weight() -> None:
    group = EmbeddingGroup(FEATURES, GROUPS)
    weights = {w.path.split("/")[-1]: w for w in group.weights}
    assert weights["mlp_price"].shape == (1, 3)
    assert weights["mlp_vec"].shape == (2, 4)
    assert group.embedding_variables == []  # dense optimizer's
    w_price = np.array([[1.0, -2.0, 0.5]], np.float32)
    w_vec = np.array([[1.0, 0.0, 2.0, 1.0], [0.0, 1.0, -1.0, 3.0]])
    weights["mlp_price"].assign(w_price)
    weights["mlp_vec"].assign(w_vec.astype(np.float32))
    features = {
        "price": tf.constant([[2.0], [-1.0]]),
        "vec": tf.constant([[1.0, 2.0], [0.5, 0.0]]),
        "raw": tf.constant([[7.0, 8.0], [9.0, 10.0]]),
    }
    out = group(features)["item"].numpy()
    assert group.group_feature_dims("item") == {"price": 3, "vec": 4, "raw": 2}
    expected = [
        [2.0, -4.0, 1.0, 1.0, 2.0, 0.0, 7.0, 7.0, 8.0],
        [-1.0, 2.0, -0.5, 0.5, 0.0, 1.0, 0.5, 9.0, 10.0],
    ]
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_mlp_weight_is_glorot_normal_as_in_torcheasyrec() -> None:
    keras.utils.set_random_seed(1)
    spec = FeatureSpec.dense("x", value_dim=64, mlp_dim=192)
    group = EmbeddingGroup([spec], [GroupSpec("g", ("x",))])
    values = group.weights[0].numpy()
    assert abs(values.std() - math.sqrt(2 / (64 + 192))) < 0.005
    assert abs(values.mean()) < 0.005


def test_mlp_group_saves_and_reloads(tmp_path: Path) -> None:
    inputs = {
        "price": keras.Input((1,), name="price"),
        "vec": keras.Input((2,), name="vec"),
        "raw": keras.Input((2,), name="raw"),
    }
    group = EmbeddingGroup(FEATURES, GROUPS)
    model = keras.Model(inputs, group(inputs)["item"])
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    x = {
        "price": np.array([[0.3]], np.float32),
        "vec": np.array([[1.0, -1.0]], np.float32),
        "raw": np.array([[2.0, 3.0]], np.float32),
    }
    np.testing.assert_allclose(model(x), reloaded(x), rtol=1e-6)


def test_torcheasyrec_mlpemb_config_features(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="easymatch.config"):
        config = load_pipeline_config_from_text(_mlpemb_text(), "m.config")
    feature_set = build_feature_set(config)
    specs = {spec.name: spec for spec in feature_set.specs()}
    assert specs["user_raw_1"] == FeatureSpec.dense("user_raw_1", 1, 16)
    assert specs["item_raw_2"].mlp_dim == 16
    assert specs["user_raw_3"].mlp_dim == 0
    # Inside the sequence the value stays dense, with a one-line note.
    assert specs["click_50_seq__item_raw_1"].mlp_dim == 0
    notes = [r.getMessage() for r in caplog.records]
    assert any(
        "features[2].raw_feature.mlp: no effect inside a sequence" in n
        for n in notes
    ), notes


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"boundaries": [1.0]}, "mlp: set either mlp or boundaries"),
        ({"embedding_dim": 0}, "embedding_dim: must be > 0 with mlp"),
    ],
)
def test_bad_mlp_configs_are_refused(edit, message) -> None:
    text = _mlpemb_text()
    feature = feature_pb2.RawFeature(
        feature_name="user_raw_2",
        expression="user:user_raw_2",
        embedding_dim=16,
    )
    feature.mlp.SetInParent()
    for key, value in edit.items():
        if isinstance(value, list):
            getattr(feature, key).extend(value)
        else:
            setattr(feature, key, value)
    old = (
        'feature_name: "user_raw_2"\n        expression: "user:user_raw_2"\n'
        "        embedding_dim: 16\n        mlp {}"
    )
    assert old in text
    text = text.replace(old, text_format.MessageToString(feature))
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config_from_text(text, "x.config")
