"""VariationalDropout: SPEC §4 T3 and the §3.5 formulas."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.layers import VariationalDropout

DIMS = [4, 3, 2]  # user_id, item_id, play_time (SPEC T3)
X = np.array(
    [
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        [0.11, 0.21, 0.31, 0.41, 0.51, 0.61, 0.71, 0.81, 0.91],
    ],
    dtype="float32",
)


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("training", [True, False])
def test_t3_shapes(training):
    out, loss = VariationalDropout(DIMS)(X, training=training)
    assert tuple(out.shape) == (2, 9)
    assert tuple(loss.shape) == ()


def test_zero_logits_halve_inputs():
    layer = VariationalDropout(DIMS)
    layer.feature_p.assign(np.zeros(3, "float32"))
    out, loss = layer(X, training=False)
    np.testing.assert_allclose(_np(out), 0.5 * X, rtol=1e-6)
    # λ / B · Σ(1 − σ(0)) = 0.01 / 2 · 1.5. SPEC T3 states 0.015, which
    # is λ · Σ without the 1 / B that §3.5 and TER's code apply.
    np.testing.assert_allclose(_np(loss), 0.0075, rtol=1e-6)


def test_eval_matches_numpy_for_random_logits():
    layer = VariationalDropout(DIMS, regularization_lambda=0.3)
    p = np.random.default_rng(1).normal(size=3).astype("float32")
    layer.feature_p.assign(p)
    out, loss = layer(X)
    keep = np.repeat(1.0 - _sigmoid(p), DIMS)
    np.testing.assert_allclose(_np(out), X * keep, rtol=1e-6)
    np.testing.assert_allclose(
        _np(loss), 0.3 / 2 * (1.0 - _sigmoid(p)).sum(), rtol=1e-6
    )
    np.testing.assert_allclose(
        layer.keep_probabilities(), 1.0 - _sigmoid(p), rtol=1e-6
    )


def test_training_drops_whole_features_by_probability():
    layer = VariationalDropout(DIMS, seed=3)
    layer.feature_p.assign(np.array([20.0, -20.0, 20.0], "float32"))
    out, train_loss = layer(X, training=True)
    expected = X * np.repeat([0.0, 1.0, 0.0], DIMS)
    np.testing.assert_allclose(_np(out), expected, atol=1e-2)
    _, eval_loss = layer(X, training=False)
    np.testing.assert_allclose(_np(train_loss), _np(eval_loss))


def test_training_noise_is_seeded():
    a, b = VariationalDropout(DIMS, seed=7), VariationalDropout(DIMS, seed=7)
    b.feature_p.assign(a.feature_p)
    x = np.ones((16, 9), "float32")
    first = _np(a(x, training=True)[0])
    np.testing.assert_array_equal(first, _np(b(x, training=True)[0]))
    # The generator advances, so the next draw differs.
    assert not np.array_equal(first, _np(a(x, training=True)[0]))


def test_unknown_batch_in_tf_function_and_strategy():
    layer = VariationalDropout(DIMS, seed=0)

    @tf.function(input_signature=[tf.TensorSpec([None, 9], tf.float32)])
    def train(x):
        return layer(x, training=True)

    out, loss = train(tf.ones((5, 9)))
    assert tuple(out.shape) == (5, 9)
    np.testing.assert_allclose(
        _np(loss), 0.01 / 5 * layer.keep_probabilities().sum(), rtol=1e-6
    )
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        replicated = VariationalDropout(DIMS, seed=0)
    out, _ = strategy.run(
        tf.function(lambda x: replicated(x, training=True)), args=(X,)
    )
    assert tuple(out.shape) == (2, 9)


def test_wrong_width_raises():
    with pytest.raises(ValueError, match="expects 9 columns"):
        VariationalDropout(DIMS)(np.ones((2, 8), "float32"))
