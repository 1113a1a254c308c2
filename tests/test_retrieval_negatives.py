"""The loss chain as MatchModel composes it, against hand-computed values.

SPEC §4 T2 through the model, sampler-mode and mixed logQ, accidental
hits in every mode, the hard block after them, n_hard = 0 in one trace.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_models_dssm import make_dssm

from easymatch.models.dssm import DSSM
from easymatch.models.match_model import MatchModel
from easymatch.retrieval.negatives import (
    candidate_item_ids,
    candidate_log_q,
)
from easymatch.retrieval.similarity import (
    IN_BATCH,
    MASKED_LOGIT,
    MIXED,
    SAMPLED,
)
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    ITEM_ID,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)


class FixedTowers(MatchModel):
    """Embeddings come in the features: u [B, d], v [M, d]."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = self.add_weight(shape=(), initializer="ones", name="s")

    def tower_outputs(self, features, training=False):
        return features["u"] * self.scale, features["v"], tf.constant(0.0)

    @property
    def embedding_variables(self) -> list:
        return []


def model(**kwargs) -> FixedTowers:
    built = FixedTowers(recall_top_ks=[2], **kwargs)
    built.compile(dense_optimizer=keras.optimizers.SGD(0.0))
    return built


def batch(u, v, **extra) -> tuple[dict, dict]:
    """(features, side_inputs): the towers' inputs, then the loss's."""
    features = {
        "u": tf.constant(u, tf.float32),
        "v": tf.constant(v, tf.float32),
    }
    side = {}
    for key, value in extra.items():
        dtype = tf.float32 if key == NEG_LOG_Q else tf.int64
        side[key] = tf.constant(value, dtype)
    return features, side


def ce(logits: np.ndarray, targets) -> float:
    logits = np.asarray(logits, np.float64)
    lse = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1))
    lse += logits.max(1)
    return float(np.mean(lse - logits[np.arange(len(logits)), targets]))


T2_U, T2_V = [[0.2], [0.3]], [[0.2], [0.3], [0.4]]


@pytest.mark.parametrize(
    ("in_batch", "similarity", "loss", "recall"),
    [
        (True, [[0.04, 0.06, 0.08], [0.06, 0.09, 0.12]], 1.108829, 0.5),
        (False, [[0.04, 0.08], [0.09, 0.12]], 0.710803, 1.0),
    ],
)
def test_spec_t2_through_the_model(in_batch, similarity, loss, recall):
    net = model(in_batch_negative=in_batch)
    inputs = batch(T2_U, T2_V)
    outputs = net(*inputs)
    np.testing.assert_allclose(outputs["similarity"], similarity, atol=1e-6)
    np.testing.assert_array_equal(outputs["logits"], outputs["similarity"])
    ones = tf.ones([2])
    logs = net.test_step((*inputs, ones, ones))
    assert float(logs["softmax_cross_entropy"]) == pytest.approx(loss, 1e-4)
    assert float(logs["recall@2"]) == pytest.approx(recall)


# B = 2 users, 2 positives, N = 3 sampled negatives (1-d embeddings).
U = [[1.0], [2.0]]
V = [[1.0], [0.5], [2.0], [1.0], [-1.0]]
Q = np.array([0.5, 0.25, 0.25], np.float32)


def test_sampler_mode_logq_leaves_the_positive_uncorrected():
    net = model(temperature=0.5, logq_correction=True)
    outputs = net(*batch(U, V, **{NEG_LOG_Q: np.log(Q)}))
    # sim/T = [[1, 2, 1, -1], [1, 4, 2, -2]] / 0.5; log(N q) = log(3 q).
    similarity = [[2.0, 4.0, 2.0, -2.0], [2.0, 8.0, 4.0, -4.0]]
    np.testing.assert_allclose(outputs["similarity"], similarity, 1e-6)
    log_count = [0.0, np.log(1.5), np.log(0.75), np.log(0.75)]
    expected = np.array(similarity) - log_count
    np.testing.assert_allclose(expected[0, 1], 3.594535, rtol=1e-6)
    np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-6)
    weight = np.array([1.0, 3.0], np.float32)
    loss = net.task.compute_loss(outputs["logits"], weight)[1]
    rows = [ce(expected[i : i + 1], [0]) for i in range(2)]
    assert float(loss) == pytest.approx(np.dot(rows, weight) / 4, 1e-5)


def test_mixed_negatives_one_softmax_over_batch_and_sampled():
    net = model(mixed_negatives=True, logq_correction=True)
    ids = [7 | 7 << 20, 9 | 9 << 20]
    inputs = batch(U, V, **{NEG_LOG_Q: np.log(Q), ITEM_ID: ids})
    ones = tf.ones([2])
    net.train_step((*inputs, ones, ones))
    net.train_step((*inputs, ones, ones))
    # Both items were in both batches: estimated in every batch, log p = 0.
    np.testing.assert_allclose(
        net.task.frequency_estimator.log_probability(tf.constant(ids)),
        [0, 0],
    )
    outputs = net(*inputs)
    # u·vᵀ over the 2 positives and 3 sampled rows; targets arange(B).
    similarity = np.array([[1, 0.5, 2, 1, -1], [2, 1, 4, 2, -2]], np.float32)
    np.testing.assert_allclose(outputs["similarity"], similarity)
    expected = similarity - [0, 0, np.log(1.5), np.log(0.75), np.log(0.75)]
    np.testing.assert_allclose(outputs["logits"], expected, rtol=1e-6)
    logs = net.test_step((*inputs, ones, ones))
    assert float(logs["softmax_cross_entropy"]) == pytest.approx(
        ce(expected, [0, 1]), rel=1e-5
    )


def test_accidental_hits_are_masked_in_every_mode():
    # Items: positives 5 and 6; negatives 6, 8, 5 and a hard negative 5.
    extra = {ITEM_ID: [5, 6], NEG_ITEM_ID: [6, 8, 5]}
    masked = np.float32(MASKED_LOGIT)

    in_batch = model(in_batch_negative=True, remove_accidental_hits=True)
    out = in_batch(*batch(U, V, **extra))["similarity"].numpy()
    # Row 0 (item 5): column 4 is item 5; row 1 (item 6): column 2.
    np.testing.assert_array_equal(
        out, np.float32([[1, 0.5, 2, 1, masked], [2, 1, masked, 2, -2]])
    )
    sampled = model(remove_accidental_hits=True)
    out = sampled(*batch(U, V, **extra))["logits"].numpy()
    # [pos | 6, 8, 5]: column 0 is each row's positive, never masked.
    np.testing.assert_array_equal(out, [[1, 2, 1, masked], [1, masked, 2, -2]])
    mixed = model(mixed_negatives=True, remove_accidental_hits=True)
    out = mixed(*batch(U, V, **extra))["similarity"].numpy()
    np.testing.assert_array_equal(
        out, np.float32([[1, 0.5, 2, 1, masked], [2, 1, masked, 2, -2]])
    )
    # The hard block is appended after masking, unmasked: row 0's hard
    # negative is its own positive's item, as the edge table says.
    hard = {ITEM_ID: [5, 6], NEG_ITEM_ID: [6, 8, 5], HARD_NEG_INDICES: [[0, 0]]}
    out = sampled(*batch(U, V[:4] + [[3.0]], **hard))["similarity"].numpy()
    np.testing.assert_array_equal(out, [[1, 2, 1, 3], [1, masked, 2, masked]])


def test_hard_block_gets_temperature_but_no_logq():
    net = model(temperature=0.5, logq_correction=True)
    inputs = batch(
        U,
        V + [[4.0]],
        **{NEG_LOG_Q: np.log(Q), HARD_NEG_INDICES: [[1, 1]]},
    )
    outputs = net(*inputs)
    # K = 2 slots; only user 1's slot 1 holds an item: u1·v = 2·4.
    masked = MASKED_LOGIT
    hard = np.array([[masked, masked], [masked, 8.0]]) / 0.5
    np.testing.assert_allclose(outputs["logits"][:, 4:], hard, rtol=1e-6)
    np.testing.assert_allclose(
        outputs["logits"][:, :4],
        net(*batch(U, V, **{NEG_LOG_Q: np.log(Q)}))["logits"],
    )


def test_no_hard_negatives_and_some_in_one_trace():
    net = model(logq_correction=True, remove_accidental_hits=True)
    rng = np.random.default_rng(0)

    def element(n_hard: int) -> tuple:
        features, side = batch(
            rng.normal(size=(3, 2)),
            rng.normal(size=(3 + 4 + n_hard, 2)),
            **{
                ITEM_ID: [1, 2, 3],
                NEG_ITEM_ID: list(range(10, 14 + n_hard)),
                NEG_LOG_Q: np.log(np.full(4, 0.1)),
                HARD_NEG_INDICES: [[i % 3, i // 3] for i in range(n_hard)],
            },
        )
        side[HARD_NEG_INDICES] = tf.reshape(side[HARD_NEG_INDICES], [n_hard, 2])
        return features, side, tf.ones([3]), tf.ones([3])

    dataset = tf.data.Dataset.from_tensors(element(0)).concatenate(
        tf.data.Dataset.from_tensors(element(5))
    )
    iterator = iter(dataset)

    @tf.function
    def step(iterator):
        features, side, label, weight = next(iterator)
        net.train_step((features, side, label, weight))
        return net(features, side)["logits"]

    # K = max(slot) + 1: 0 hard columns, then 2.
    assert step(iterator).shape == (3, 5)
    assert step(iterator).shape == (3, 7)
    assert step.experimental_get_tracing_count() == 1


def test_candidate_columns_per_mode():
    in_batch_q = np.log([0.5, 0.25])
    neg_q = np.log([0.1, 0.2, 0.2])
    log_n = np.log(3.0)
    got = candidate_log_q(SAMPLED, 4, None, neg_q)
    np.testing.assert_allclose(got, [0, *(neg_q + log_n)], rtol=1e-6)
    got = candidate_log_q(MIXED, 5, in_batch_q, neg_q)
    np.testing.assert_allclose(got, [*in_batch_q, *(neg_q + log_n)], 1e-6)
    # In-batch mode with hard rows as plain columns: uncorrected.
    got = candidate_log_q(IN_BATCH, 7, in_batch_q, neg_q)
    np.testing.assert_allclose(got, [*in_batch_q, *(neg_q + log_n), 0, 0])
    np.testing.assert_allclose(
        candidate_log_q(IN_BATCH, 2, in_batch_q, None), in_batch_q
    )
    ids, negs = [5, 6], [7, 8, 9, 10]
    assert candidate_item_ids(SAMPLED, 3, ids, negs).numpy().tolist() == [
        -1,
        7,
        8,
    ]
    assert candidate_item_ids(MIXED, 4, ids, negs).numpy().tolist() == [
        5,
        6,
        7,
        8,
    ]
    got = candidate_item_ids(IN_BATCH, 6, ids, negs).numpy().tolist()
    assert got == [5, 6, 7, 8, 9, 10]
    assert candidate_item_ids(IN_BATCH, 2, ids, None).numpy().tolist() == ids


def test_missing_inputs_and_bad_combinations_raise():
    with pytest.raises(ValueError, match="mixed_negatives is for sampler"):
        model(in_batch_negative=True, mixed_negatives=True)
    net = model(logq_correction=True)
    with pytest.raises(ValueError, match=r"side_inputs\['__neg_log_q__'\]"):
        net(*batch(U, V))
    net = model(in_batch_negative=True, remove_accidental_hits=True)
    with pytest.raises(ValueError, match=r"side_inputs\['__item_id__'\]"):
        net(*batch(U, V))


def test_options_round_trip_through_get_config():
    options = dict(logq_correction=True, remove_accidental_hits=True)
    dssm = make_dssm(mixed_negatives=True, **options)
    config = dssm.get_config()
    assert config["mixed_negatives"] and config["logq_correction"]
    again = DSSM.from_config(config)
    assert again.task.mode == MIXED and again.task.remove_accidental_hits
    assert again.task.frequency_estimator is not None
    assert make_dssm(logq_correction=True).task.frequency_estimator is None
