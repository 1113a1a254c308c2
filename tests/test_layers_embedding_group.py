"""EmbeddingGroup: pooled values, concat order, dims and table sharing."""

import keras
import numpy as np
import pytest

from easymatch.layers import EmbeddingGroup
from easymatch.specs import FeatureSpec, GroupSpec, TableSpec


def sparse(name, table, num=10, dim=2, pooling="sum", weighted=False):
    return FeatureSpec.sparse(
        name, TableSpec(table, num, dim), pooling, weighted
    )


def dense(name, value_dim=1):
    return FeatureSpec.dense(name, value_dim)


def make(features, groups) -> EmbeddingGroup:
    """The layer; groups as GroupSpec configs, which read like the proto."""
    return EmbeddingGroup(features, [GroupSpec.from_config(g) for g in groups])


def _set_rows(layer: EmbeddingGroup, table: str, scale: float = 1.0) -> None:
    """Row i of `table` becomes scale * [i, 10 i, 100 i, ...]."""
    (variable,) = [v for v in layer.embedding_variables if v.name == table]
    rows, dim = variable.shape
    variable.assign(
        scale
        * np.outer(np.arange(rows), 10.0 ** np.arange(dim)).astype("float32")
    )


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


IDS = np.array([[1, 2, -1], [-1, -1, -1], [4, -1, -1]], "int64")


@pytest.mark.parametrize(
    "pooling, expected",
    [
        ("sum", [[3.0, 30.0], [0.0, 0.0], [4.0, 40.0]]),
        ("mean", [[1.5, 15.0], [0.0, 0.0], [4.0, 40.0]]),
    ],
)
def test_multi_value_pooling(pooling, expected):
    layer = make(
        [sparse("a", "a_emb", pooling=pooling)],
        [{"name": "g", "feature_names": ["a"]}],
    )
    _set_rows(layer, "a_emb")
    np.testing.assert_allclose(_np(layer({"a": IDS})["g"]), expected)


def test_concat_order_features_then_encoders():
    layer = make(
        [
            sparse("a", "a_emb"),
            dense("d", 2),
            sparse("s1", "s1_emb", dim=1),
            sparse("s2", "s2_emb", dim=2),
        ],
        [
            {
                "name": "g",
                # Encoders come last although the seq group is listed first.
                "sequence_groups": [
                    {"name": "seq", "feature_names": ["s1", "s2"]}
                ],
                "sequence_encoders": [
                    {"input": "seq", "pooling_type": "sum"},
                    {"input": "seq", "pooling_type": "mean"},
                ],
                "feature_names": ["d", "a"],
            }
        ],
    )
    _set_rows(layer, "a_emb")
    _set_rows(layer, "s1_emb")
    _set_rows(layer, "s2_emb", scale=2.0)
    out = layer(
        {
            "a": np.array([[3], [-1]], "int64"),
            "d": np.array([[0.5, 0.25], [1.0, 2.0]], "float32"),
            # The length comes from s1 only: rows have 2 and 0 positions.
            "s1": np.array([[1, 2, -1], [-1, -1, -1]], "int64"),
            "s2": np.array([[3, 4, -1], [-1, -1, -1]], "int64"),
        }
    )["g"]
    row0 = [0.5, 0.25, 3.0, 30.0, 3.0, 14.0, 140.0, 1.5, 7.0, 70.0]
    row1 = [1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(_np(out), [row0, row1])
    assert layer.group_feature_dims("g") == {
        "d": 2,
        "a": 2,
        "g_seq_encoder_0": 3,
        "g_seq_encoder_1": 3,
    }
    assert list(layer.group_feature_dims("g")) == [
        "d",
        "a",
        "g_seq_encoder_0",
        "g_seq_encoder_1",
    ]
    assert layer.group_total_dim("g") == 10


def test_encoder_max_seq_length():
    layer = make(
        [sparse("s", "s_emb", dim=1)],
        [
            {
                "name": "g",
                "feature_names": [],
                "sequence_groups": [{"name": "seq", "feature_names": ["s"]}],
                "sequence_encoders": [
                    {
                        "input": "seq",
                        "pooling_type": "mean",
                        "max_seq_length": 2,
                    }
                ],
            }
        ],
    )
    _set_rows(layer, "s_emb")
    out = layer({"s": np.array([[1, 3, 8], [5, -1, -1]], "int64")})["g"]
    np.testing.assert_allclose(_np(out), [[2.0], [5.0]])


# SPEC §5.1's user group.
TAOBAO_USER = (
    "user_id",
    "cms_segid",
    "cms_group_id",
    "final_gender_code",
    "age_level",
    "pvalue_level",
    "shopping_level",
    "occupation",
    "new_user_class_level",
    "pid",
)


def _taobao_user_item() -> EmbeddingGroup:
    """SPEC §5.1's DSSM v1 groups, with small tables."""
    user = list(TAOBAO_USER)
    item = ["adgroup_id", "cate_id", "campaign_id", "customer", "brand"]
    seq = [f"click_50_seq__{n}" for n in ("adgroup_id", "cate_id", "brand")]
    features = [sparse(n, f"{n}_emb", dim=16) for n in user + item + seq]
    features.append(sparse("price", "price_emb", num=99, dim=16))
    groups = [
        {
            "name": "user",
            "feature_names": user,
            "sequence_groups": [{"name": "click_50_seq", "feature_names": seq}],
            "sequence_encoders": [
                {"input": "click_50_seq", "pooling_type": "mean"}
            ],
        },
        {"name": "item", "feature_names": [*item, "price"]},
    ]
    return make(features, groups)


def test_taobao_group_dims_and_row_counts():
    layer = _taobao_user_item()
    assert layer.group_total_dim("user") == 10 * 16 + 48 == 208
    assert layer.group_total_dim("item") == 96
    dims = layer.group_feature_dims("user")
    assert list(dims)[-1] == "user_seq_encoder_0"
    assert dims["user_seq_encoder_0"] == 48
    # v1 keeps the sequence tables apart from the item tables (SPEC §5.1).
    assert len(layer.embedding_variables) == 19
    # User rows: B = 2; item rows: B + N = 5.
    rng = np.random.default_rng(0)
    inputs = {}
    for spec in layer.features:
        rows = 5 if spec.name in layer.groups[1].feature_names else 2
        inputs[spec.name] = rng.integers(-1, 10, size=(rows, 4))
    out = layer(inputs)
    assert tuple(out["user"].shape) == (2, 208)
    assert tuple(out["item"].shape) == (5, 96)


def test_shared_embedding_name_is_one_variable_and_suffix_splits():
    layer = make(
        [sparse("a", "shared"), sparse("b", "shared"), sparse("c", "other")],
        [
            {"name": "g1", "feature_names": ["a", "b"]},
            {"name": "g2", "feature_names": ["a", "c"]},
            {
                "name": "g3",
                "feature_names": ["b"],
                "embedding_name_suffix": "item",
            },
        ],
    )
    names = [v.name for v in layer.embedding_variables]
    assert names == ["shared", "other", "shared_item"]
    _set_rows(layer, "shared")
    _set_rows(layer, "shared_item", scale=-1.0)
    out = layer(
        {
            "a": np.array([[1]], "int64"),
            "b": np.array([[2]], "int64"),
            "c": np.array([[0]], "int64"),
        }
    )
    np.testing.assert_allclose(_np(out["g1"]), [[1.0, 10.0, 2.0, 20.0]])
    np.testing.assert_allclose(_np(out["g3"]), [[-2.0, -20.0]])


def test_shared_table_disagreement_names_both_features():
    with pytest.raises(ValueError, match="'a' and 'b'"):
        make(
            [sparse("a", "shared", dim=2), sparse("b", "shared", dim=4)],
            [{"name": "g", "feature_names": ["a", "b"]}],
        )


@pytest.mark.parametrize(
    "groups, message",
    [
        ([{"name": "g", "feature_names": ["nope"]}], "unknown feature"),
        ([{"name": "g", "feature_names": []}], "no features"),
        (
            [
                {
                    "name": "g",
                    "feature_names": ["a"],
                    "sequence_groups": [{"name": "s", "feature_names": ["a"]}],
                }
            ],
            "no sequence encoder",
        ),
        (
            [
                {
                    "name": "g",
                    "feature_names": ["a"],
                    "sequence_encoders": [{"input": "s"}],
                }
            ],
            "not a sequence group",
        ),
        (
            [
                {
                    "name": "g",
                    "feature_names": ["a"],
                    "sequence_groups": [{"name": "s", "feature_names": ["w"]}],
                    "sequence_encoders": [{"input": "s"}],
                }
            ],
            "none of them weighted",
        ),
        (
            [
                {"name": "g", "feature_names": ["a"]},
                {"name": "g", "feature_names": ["d"]},
            ],
            "twice",
        ),
    ],
)
def test_bad_groups_raise(groups, message):
    weighted = sparse("w", "w_emb", weighted=True)
    with pytest.raises(ValueError, match=message):
        make([sparse("a", "a_emb"), dense("d"), weighted], groups)


def test_bad_features_raise():
    with pytest.raises(ValueError, match="kind"):
        FeatureSpec("x", "weird")
    with pytest.raises(ValueError, match="pooling"):
        sparse("x", "x_emb", pooling="max")
    with pytest.raises(ValueError, match="twice"):
        EmbeddingGroup([dense("x"), dense("x")], [])


@pytest.mark.parametrize(
    "pooling, expected",
    [
        # Row 0: 0.5 * row 1 + 2 * row 2; mean divides by the 2 ids.
        ("sum", [[4.5, 45.0], [0.0, 0.0], [-4.0, -40.0]]),
        ("mean", [[2.25, 22.5], [0.0, 0.0], [-4.0, -40.0]]),
    ],
)
def test_weighted_pooling_scales_each_id(pooling, expected):
    spec = sparse("a", "a_emb", pooling=pooling, weighted=True)
    layer = make([spec], [{"name": "g", "feature_names": ["a"]}])
    _set_rows(layer, "a_emb")
    weights = np.array([[0.5, 2.0, 0.0], [0.0] * 3, [-1.0, 0.0, 0.0]])
    out = layer({"a": IDS, "a__weight": weights.astype("float32")})["g"]
    np.testing.assert_allclose(_np(out), expected)


def test_dense_sequence_features_join_per_position_with_their_length():
    layer = make(
        [dense("p", 2), sparse("s", "s_emb", dim=1)],
        [
            {
                "name": "g",
                "feature_names": [],
                "sequence_groups": [{"name": "q", "feature_names": ["p", "s"]}],
                "sequence_encoders": [{"input": "q", "pooling_type": "mean"}],
            }
        ],
    )
    _set_rows(layer, "s_emb")
    values = np.array([[[1, 2], [3, 4], [0, 0]], [[0, 0]] * 3], "float32")
    out = layer(
        {
            "p": values,
            # The length comes from the first feature, here the dense one.
            "p__length": np.array([2, 0], "int32"),
            "s": np.array([[1, 5, -1], [-1, -1, -1]], "int64"),
        }
    )["g"]
    np.testing.assert_allclose(_np(out), [[2.0, 3.0, 3.0], [0.0, 0.0, 0.0]])
    assert layer.group_feature_dims("g") == {"g_seq_encoder_0": 3}


def test_group_names_computes_only_those_groups():
    layer = make(
        [sparse("a", "a_emb"), dense("d")],
        [
            {"name": "g1", "feature_names": ["a"]},
            {"name": "g2", "feature_names": ["d"]},
        ],
    )
    # g1's features are absent: only g2 is computed.
    out = layer({"d": np.ones((4, 1), "float32")}, group_names=["g2"])
    assert list(out) == ["g2"]
    with pytest.raises(ValueError, match="Unknown groups"):
        layer({"d": np.ones((4, 1), "float32")}, group_names=["g3"])
