"""Every layer: config round trip, and identical inference outputs eagerly,
under tf.function with an unknown batch size, and after a .keras reload."""

import json
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.layers import (
    MLP,
    EmbeddingGroup,
    EmbeddingTables,
    PoolingEncoder,
    VariationalDropout,
)
from easymatch.models.tower import MatchTower
from easymatch.specs import (
    FeatureSpec,
    GroupSpec,
    SequenceEncoderSpec,
    SequenceGroupSpec,
    TableSpec,
)

RNG = np.random.default_rng(0)


def _ids(rows: int, length: int, high: int) -> np.ndarray:
    return RNG.integers(-1, high, size=(rows, length)).astype("int64")


def _embedding_tables() -> tuple[keras.layers.Layer, Any, Any]:
    layer = EmbeddingTables([TableSpec("a", 10, 3), TableSpec("b", 5, 2)])
    inputs = {
        "a": keras.Input((4,), dtype="int64", name="a"),
        "b": keras.Input((2,), dtype="int64", name="b"),
    }
    return layer, inputs, {"a": _ids(3, 4, 10), "b": _ids(3, 2, 5)}


def _pooling_encoder() -> tuple[keras.layers.Layer, Any, Any]:
    layer = PoolingEncoder("mean", max_seq_length=3)
    inputs = [keras.Input((5, 2)), keras.Input((), dtype="int32")]
    values = [
        RNG.normal(size=(3, 5, 2)).astype("float32"),
        np.array([0, 2, 5], "int32"),
    ]
    return layer, inputs, values


def _embedding_group() -> tuple[keras.layers.Layer, Any, Any]:
    def sparse(name: str, pooling: str = "sum") -> FeatureSpec:
        return FeatureSpec.sparse(
            name, TableSpec(f"{name}_emb", 10, 2), pooling
        )

    layer = EmbeddingGroup(
        [
            sparse("u", "mean"),
            FeatureSpec.dense("x", value_dim=2),
            sparse("s"),
            sparse("i"),
        ],
        [
            GroupSpec(
                "user",
                ("u", "x"),
                (SequenceGroupSpec("seq", ("s",)),),
                (SequenceEncoderSpec("seq", "mean"),),
            ),
            GroupSpec("item", ("i",), embedding_name_suffix="x"),
        ],
    )
    inputs = {
        "u": keras.Input((3,), dtype="int64", name="u"),
        "x": keras.Input((2,), name="x"),
        "s": keras.Input((4,), dtype="int64", name="s"),
    }
    values = {
        "u": _ids(2, 3, 10),
        "x": RNG.normal(size=(2, 2)).astype("float32"),
        "s": _ids(2, 4, 10),
    }
    # The item group has its own row count and its own model input.
    inputs["i"] = keras.Input((1,), dtype="int64", name="i")
    values["i"] = _ids(5, 1, 10)
    return layer, inputs, values


def _embedding_group_weighted_dense_sequence() -> tuple[
    keras.layers.Layer, Any, Any
]:
    layer = EmbeddingGroup(
        [
            FeatureSpec.sparse(
                "w", TableSpec("w_emb", 10, 2), "mean", weighted=True
            ),
            FeatureSpec.dense("p", value_dim=2),
            FeatureSpec.sparse("q", TableSpec("q_emb", 4, 3)),
        ],
        [
            GroupSpec(
                "g",
                ("w",),
                (SequenceGroupSpec("s", ("p", "q")),),
                (SequenceEncoderSpec("s", "mean"),),
            )
        ],
    )
    inputs = {
        "w": keras.Input((3,), dtype="int64", name="w"),
        "w__weight": keras.Input((3,), name="w__weight"),
        "p": keras.Input((4, 2), name="p"),
        "p__length": keras.Input((), dtype="int32", name="p__length"),
        "q": keras.Input((4,), dtype="int64", name="q"),
    }
    values = {
        "w": np.array([[1, 2, -1], [-1, -1, -1]], "int64"),
        "w__weight": np.array([[0.5, 2.0, 0.0], [0.0, 0.0, 0.0]], "float32"),
        "p": np.array(
            [[[1, 2], [3, 4], [0, 0], [0, 0]], [[0, 0]] * 4], "float32"
        ),
        "p__length": np.array([2, 0], "int32"),
        "q": np.array([[3, 1, -1, -1], [-1] * 4], "int64"),
    }
    return layer, inputs, values


def _match_tower() -> tuple[keras.layers.Layer, Any, Any]:
    layer = MatchTower(
        [2, 3],
        mlp={"hidden_units": [4], "use_ln": True},
        output_dim=3,
        similarity="COSINE",
        variational_dropout={"regularization_lambda": 0.1},
    )
    layer.build((None, 5))
    return layer, keras.Input((5,)), RNG.normal(size=(3, 5)).astype("float32")


def _match_tower_bf16() -> tuple[keras.layers.Layer, Any, Any]:
    layer = MatchTower(
        [2, 3], mlp={"hidden_units": [4]}, mixed_precision="BF16"
    )
    layer.build((None, 5))
    return layer, keras.Input((5,)), RNG.normal(size=(3, 5)).astype("float32")


def _mlp() -> tuple[keras.layers.Layer, Any, Any]:
    layer = MLP([4, 3], activation="nn.GELU", use_bn=True, dropout_ratio=[0.5])
    return layer, keras.Input((6,)), RNG.normal(size=(3, 6)).astype("float32")


def _variational_dropout() -> tuple[keras.layers.Layer, Any, Any]:
    layer = VariationalDropout([2, 1, 3], seed=1)
    return layer, keras.Input((6,)), RNG.normal(size=(3, 6)).astype("float32")


CASES: dict[str, Callable[[], tuple[keras.layers.Layer, Any, Any]]] = {
    "embedding_tables": _embedding_tables,
    "pooling_encoder": _pooling_encoder,
    "embedding_group": _embedding_group,
    "embedding_group_weighted_dense_sequence": (
        _embedding_group_weighted_dense_sequence
    ),
    "mlp": _mlp,
    "variational_dropout": _variational_dropout,
    "match_tower": _match_tower,
    "match_tower_bf16": _match_tower_bf16,
}


def _apply(layer: keras.layers.Layer, inputs: Any) -> Any:
    if isinstance(inputs, list):
        return layer(*inputs)
    return layer(inputs)


def _numpy(tree: Any) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(t) for t in tf.nest.flatten(tree)]


def _assert_same(a: Any, b: Any) -> None:
    for x, y in zip(_numpy(a), _numpy(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", CASES)
def test_config_round_trip(case):
    layer = CASES[case]()[0]
    config = layer.get_config()
    json.dumps(config)
    rebuilt = type(layer).from_config(config)
    assert rebuilt.get_config() == config


@pytest.mark.parametrize("case", CASES)
def test_eager_graph_and_reloaded_outputs_match(case, tmp_path):
    layer, inputs, values = CASES[case]()
    model = keras.Model(inputs, _apply(layer, inputs))
    if isinstance(layer, MLP):
        # Give BatchNorm moving statistics that are not the identity.
        layer._blocks[1].moving_mean.assign([0.5, -1.0, 2.0, 0.0])
        layer._blocks[1].moving_variance.assign([4.0, 0.25, 1.0, 2.0])
    eager = model(values, training=False)

    signature = tf.nest.map_structure(
        lambda v: tf.TensorSpec((None, *v.shape[1:]), v.dtype), values
    )
    graph = tf.function(
        lambda v: model(v, training=False), input_signature=[signature]
    )
    _assert_same(eager, graph(values))

    path = tmp_path / f"{case}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    _assert_same(eager, reloaded(values, training=False))
    reloaded_layer = reloaded.layers[-1]
    assert type(reloaded_layer) is type(layer)
    assert reloaded_layer.get_config() == layer.get_config()
