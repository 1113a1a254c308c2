"""The Retrieval task alone: explicit tensors in, loss, logits, metrics out.

Hand-computed SPEC T2 values, the same loss and logits as the full model
on one batch (training and evaluation, every option on), and a config
and .keras save-and-reload.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_models_dssm import make_dssm, padded

from easymatch.models.match_model import task_inputs
from easymatch.retrieval.task import Retrieval
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    ITEM_ID,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)

# SPEC §4 T2: u = [0.2, 0.3], v = [0.2, 0.3, 0.4] (1-d embeddings).
T2_U = tf.constant([[0.2], [0.3]])
T2_V = tf.constant([[0.2], [0.3], [0.4]])


@pytest.mark.parametrize(
    ("in_batch", "logits", "loss", "recall"),
    [
        (True, [[0.04, 0.06, 0.08], [0.06, 0.09, 0.12]], 1.108829, 0.5),
        (False, [[0.04, 0.08], [0.09, 0.12]], 0.710803, 1.0),
    ],
)
def test_spec_t2_on_the_task_alone(in_batch, logits, loss, recall):
    task = Retrieval(in_batch_negative=in_batch, recall_top_ks=[2])
    out = task(T2_U, T2_V, sample_weight=tf.ones([2]))
    np.testing.assert_allclose(out["logits"], logits, atol=1e-6)
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-5)
    assert float(out["logs"]["softmax_cross_entropy"]) == pytest.approx(
        loss, rel=1e-5
    )
    # Recall@2: in-batch row 0's top two are columns 2 and 1; sampled
    # rows have two columns.
    assert float(out["logs"]["recall@2"]) == pytest.approx(recall)


def test_regularization_joins_the_loss_and_the_tracker():
    task = Retrieval(in_batch_negative=True)
    out = task(T2_U, T2_V, regularization_loss=0.5, training=True)
    assert float(out["loss"]) == pytest.approx(1.108829 + 0.5, rel=1e-5)
    assert float(out["cross_entropy"]) == pytest.approx(1.108829, rel=1e-5)
    assert float(out["logs"]["loss"]) == pytest.approx(1.608829, rel=1e-5)


def test_without_metrics_the_estimator_still_counts():
    task = Retrieval(
        in_batch_negative=True,
        logq_correction=True,
        candidate_probability={"source": "streaming", "num_buckets": 16},
        train_recall_top_ks=[1],
        train_recall_decays=[[0.5, 1]],
    )
    ids = tf.constant([1 | 1 << 4, 2 | 2 << 4, 3 | 3 << 4], tf.int64)
    out = task(T2_U, T2_V, item_ids=ids, training=True, compute_metrics=False)
    assert out["logs"] == {}
    assert int(task.frequency_estimator.step) == 1
    assert float(task.loss_tracker.result()) == 0.0
    assert int(task.train_recall_metrics[0].steps) == 0


OPTIONS = {
    # In-batch, streaming logQ (the estimator learns in training calls),
    # accidental hits.
    "in_batch": dict(
        in_batch_negative=True,
        logq_correction=True,
        remove_accidental_hits=True,
        candidate_probability={"source": "streaming", "num_buckets": 1024},
        temperature=0.5,
    ),
    # Sampler mode with hard negatives: the sampler's log q, hits masked.
    "sampled_hard": dict(
        logq_correction=True, remove_accidental_hits=True, temperature=0.2
    ),
}


def one_batch(kind: str) -> tuple:
    """(features, side_inputs, label, sample_weight): B = 3 users; items:
    3 positives, 2 sampled, (2 hard)."""
    hard = kind == "sampled_hard"
    rows = 7 if hard else 3
    features = {
        "cat_u": padded([1, 2, 1]),
        "int_u": tf.constant([[0.2], [0.3], [0.1]]),
        "cat_i": padded([1, 2, 1, 3, 1, 2, 1][:rows]),
        "int_i": tf.constant([[0.1 * i] for i in range(rows)]),
    }
    ids = [11 | 11 << 10, 12 | 12 << 10, 11 | 11 << 10]
    side = {ITEM_ID: tf.constant(ids, tf.int64)}
    if hard:
        side[NEG_ITEM_ID] = tf.constant([ids[1], 99, 98, ids[0]], tf.int64)
        side[NEG_LOG_Q] = tf.math.log(tf.constant([0.3, 0.1]))
        side[HARD_NEG_INDICES] = tf.constant([[0, 0], [2, 1]], tf.int64)
    weight = tf.constant([1.0, 2.0, 0.5])
    return features, side, tf.ones([3]), weight


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_task_alone_gives_the_full_models_loss_and_logits(kind):
    keras.utils.set_random_seed(0)
    model = make_dssm(**OPTIONS[kind], recall_top_ks=[2])
    model.compile(dense_optimizer=keras.optimizers.SGD(0.0))
    task = Retrieval(**OPTIONS[kind], recall_top_ks=[2])
    features, side, label, weight = batch = one_batch(kind)
    user, item, _ = model.tower_outputs(features)
    # One training step each: the model's SGD(0) leaves the towers as they
    # are; both estimators count the batch.
    model.train_step(batch)
    task(user, item, **task_inputs(side), sample_weight=weight, training=True)
    logs = model.test_step(batch)
    outputs = model(features, side)
    alone = task(user, item, **task_inputs(side), sample_weight=weight)
    np.testing.assert_allclose(alone["logits"], outputs["logits"], rtol=1e-6)
    np.testing.assert_allclose(alone["similarity"], outputs["similarity"])
    for name, value in alone["logs"].items():
        assert float(value) == pytest.approx(float(logs[name]), rel=1e-6)
    # The weighted CE, recomputed from the logits by hand.
    logits = alone["logits"].numpy().astype(np.float64)
    targets = [0, 0, 0] if kind == "sampled_hard" else [0, 1, 2]
    shift = logits.max(1, keepdims=True)
    lse = np.log(np.exp(logits - shift).sum(1)) + shift[:, 0]
    per_row = lse - logits[np.arange(3), targets]
    expected = np.dot(per_row, weight) / float(tf.reduce_sum(weight))
    assert float(alone["loss"]) == pytest.approx(expected, rel=1e-5)


def test_config_round_trip_keeps_options_and_outputs():
    task = Retrieval(**OPTIONS["sampled_hard"], recall_top_ks=[2, 5])
    again = keras.layers.deserialize(keras.layers.serialize(task))
    assert isinstance(again, Retrieval)
    assert again.options() == task.options()
    assert again.get_config() == task.get_config()
    _, side, _, weight = one_batch("sampled_hard")
    user = tf.constant(np.random.default_rng(0).normal(size=(3, 4)))
    item = tf.constant(np.random.default_rng(1).normal(size=(7, 4)))
    first = task(user, item, **task_inputs(side), sample_weight=weight)
    second = again(user, item, **task_inputs(side), sample_weight=weight)
    np.testing.assert_array_equal(first["logits"], second["logits"])
    assert float(first["loss"]) == float(second["loss"])


def test_keras_reload_keeps_the_learnt_estimate(tmp_path):
    model = make_dssm(**OPTIONS["in_batch"])
    model.compile(dense_optimizer=keras.optimizers.SGD(0.0))
    features, side, label, weight = batch = one_batch("in_batch")
    for _ in range(3):
        model.train_step(batch)
    estimator = model.task.frequency_estimator
    assert int(estimator.step) == 3
    path = tmp_path / "dssm.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert int(reloaded.task.frequency_estimator.step) == 3
    np.testing.assert_allclose(
        reloaded(features, side)["logits"], model(features, side)["logits"]
    )
