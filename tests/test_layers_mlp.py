"""MLP: block structure, PyTorch activations and initialisation."""

import math

import keras
import numpy as np
import pytest

from easymatch.layers import MLP

X = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")


def _kinds(mlp: MLP) -> list[str]:
    return [type(layer).__name__ for layer in mlp._blocks]


def test_use_bn_structure_and_no_dense_bias():
    mlp = MLP([8, 4], use_bn=True, dropout_ratio=[0.0, 0.5])
    mlp.build(X.shape)
    assert _kinds(mlp) == [
        "Dense",
        "BatchNormalization",
        "Activation",
        "Dense",
        "BatchNormalization",
        "Activation",
        "Dropout",
    ]
    dense = [b for b in mlp._blocks if isinstance(b, keras.layers.Dense)]
    assert not any(d.use_bias for d in dense)
    norm = mlp._blocks[1]
    assert norm.momentum == pytest.approx(0.9)
    assert norm.epsilon == pytest.approx(1e-5)
    assert mlp._blocks[-1].rate == pytest.approx(0.5)
    assert mlp.output_dim == 4


def test_use_ln_and_bias_flags():
    mlp = MLP([3], use_ln=True, activation="", bias=False)
    mlp.build(X.shape)
    assert _kinds(mlp) == ["Dense", "LayerNormalization"]
    assert not mlp._blocks[0].use_bias
    assert mlp._blocks[1].epsilon == pytest.approx(1e-5)
    with pytest.raises(ValueError, match="use_bn and use_ln"):
        MLP([3], use_bn=True, use_ln=True)


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


@pytest.mark.parametrize(
    "name, reference",
    [
        ("nn.ReLU", lambda x: np.maximum(x, 0.0)),
        ("nn.Sigmoid", lambda x: 1.0 / (1.0 + np.exp(-x))),
        ("nn.Tanh", np.tanh),
        ("nn.LeakyReLU", lambda x: np.where(x > 0, x, 0.01 * x)),
        ("nn.GELU", _gelu),
        ("nn.SiLU", lambda x: x / (1.0 + np.exp(-x))),
        ("", lambda x: x),
    ],
)
def test_activation_matches_numpy(name, reference):
    mlp = MLP([6], activation=name)
    got = keras.ops.convert_to_numpy(mlp(X))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in mlp.weights)
    linear = X.astype("float64") @ kernel + bias
    np.testing.assert_allclose(got, reference(linear), rtol=1e-5, atol=1e-6)


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="nn.Dice"):
        MLP([3], activation="nn.Dice")


@pytest.mark.parametrize(
    "ratios, expected",
    [
        ([], [0.0, 0.0, 0.0]),
        ([0.2], [0.2, 0.2, 0.2]),
        ([0.1, 0, 0.3], [0.1, 0, 0.3]),
    ],
)
def test_dropout_ratio_rules(ratios, expected):
    mlp = MLP([4, 4, 4], dropout_ratio=ratios)
    assert mlp.dropout_ratio == pytest.approx(expected)
    mlp.build(X.shape)
    rates = [b.rate for b in mlp._blocks if isinstance(b, keras.layers.Dropout)]
    assert rates == pytest.approx([r for r in expected if r > 0])


def test_dropout_ratio_length_mismatch_raises():
    with pytest.raises(ValueError, match="dropout_ratio has 2 values"):
        MLP([4, 4, 4], dropout_ratio=[0.1, 0.2])


def test_torch_linear_init_bounds():
    mlp = MLP([64, 8])
    mlp.build((None, 100))
    for (kernel, bias), fan_in in zip(
        zip(mlp.weights[::2], mlp.weights[1::2], strict=True),
        (100, 64),
        strict=True,
    ):
        bound = 1.0 / math.sqrt(fan_in)
        for weight in (kernel, bias):
            values = np.abs(keras.ops.convert_to_numpy(weight))
            assert values.max() <= bound
            assert values.max() > 0.75 * bound


def test_kernel_and_bias_are_drawn_independently():
    mlp = MLP([4])
    mlp.build((None, 4))
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in mlp.weights)
    assert not np.array_equal(kernel[0], bias)


def test_empty_hidden_units_is_identity():
    mlp = MLP([], use_bn=True, dropout_ratio=[0.5])
    with pytest.raises(ValueError, match="built"):
        _ = mlp.output_dim
    out = mlp(X, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), X)
    assert mlp.output_dim == 5
    assert not mlp.weights


def test_training_flag_reaches_dropout():
    mlp = MLP([200], activation="", dropout_ratio=[0.5])
    inference = keras.ops.convert_to_numpy(mlp(X, training=False))
    training = keras.ops.convert_to_numpy(mlp(X, training=True))
    assert not (inference == 0).any()
    assert (training == 0).mean() > 0.3
