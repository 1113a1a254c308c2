"""Similarity matrices: SPEC §4 T2/T4 and hand-computed hard negatives."""

import numpy as np
import pytest
import tensorflow as tf

from easymatch.retrieval.similarity import (
    IN_BATCH,
    MASKED_LOGIT,
    SAMPLED,
    hard_negative_similarity,
    in_batch_similarity,
    sampled_similarity,
    similarity_blocks,
    target_columns,
)


def match_similarity(user, item, in_batch_negative, hard_neg_indices=None):
    """TER's MatchModel.sim, [simple | hard], from the library's blocks."""
    mode = IN_BATCH if in_batch_negative else SAMPLED
    simple, hard = similarity_blocks(user, item, mode, hard_neg_indices)
    return simple if hard is None else tf.concat([simple, hard], axis=1)


# SPEC §4 T2.
T2_USER = np.array([[0.2], [0.3]], np.float32)
T2_ITEM = np.array([[0.2], [0.3], [0.4]], np.float32)

# T4-style hard-negative batch: B = 2, N = 2, n_hard = 3.
RNG = np.random.default_rng(7)
USER = RNG.normal(size=(2, 4)).astype(np.float32)
ITEM = RNG.normal(size=(7, 4)).astype(np.float32)
HARD = np.array([[0, 0], [1, 0], [1, 1]], np.int64)


def test_t2_in_batch_similarity() -> None:
    sim = match_similarity(T2_USER, T2_ITEM, in_batch_negative=True)
    np.testing.assert_allclose(
        sim, [[0.04, 0.06, 0.08], [0.06, 0.09, 0.12]], atol=1e-6
    )
    np.testing.assert_array_equal(target_columns(sim, True), [0, 1])


def test_t2_sampler_similarity() -> None:
    sim = match_similarity(T2_USER, T2_ITEM, in_batch_negative=False)
    np.testing.assert_allclose(sim, [[0.04, 0.08], [0.09, 0.12]], atol=1e-6)
    np.testing.assert_array_equal(target_columns(sim, False), [0, 0])


def test_in_batch_uses_every_item_row_and_ignores_hard_indices() -> None:
    sim = match_similarity(USER, ITEM, True, hard_neg_indices=HARD)
    np.testing.assert_allclose(sim, USER @ ITEM.T, rtol=1e-5)
    np.testing.assert_allclose(in_batch_similarity(USER, ITEM), sim)


def test_sampled_similarity_shares_negatives() -> None:
    sim = sampled_similarity(USER, ITEM[:4])
    expected = np.concatenate(
        [np.sum(USER * ITEM[:2], axis=1, keepdims=True), USER @ ITEM[2:4].T],
        axis=1,
    )
    np.testing.assert_allclose(sim, expected, rtol=1e-5)


def test_sampled_similarity_needs_b_item_rows() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match="at least B"):
        sampled_similarity(USER, ITEM[:1])


def test_t4_hard_negatives() -> None:
    sim = match_similarity(USER, ITEM, False, hard_neg_indices=HARD).numpy()
    assert sim.shape == (2, 5)  # 1 pos + 2 simple neg + K = 2
    np.testing.assert_allclose(
        sim[:, :3], sampled_similarity(USER, ITEM[:4]), rtol=1e-6
    )
    # Hard row j is item row 4 + j, scored against user H[j, 0].
    assert sim[0, 3] == pytest.approx(float(USER[0] @ ITEM[4]), rel=1e-5)
    assert sim[1, 3] == pytest.approx(float(USER[1] @ ITEM[5]), rel=1e-5)
    assert sim[1, 4] == pytest.approx(float(USER[1] @ ITEM[6]), rel=1e-5)
    assert sim[0, 4] == pytest.approx(-1e32, rel=1e-6)
    assert sim.dtype == np.float32


def test_hard_block_width_follows_max_slot() -> None:
    indices = np.array([[1, 3]], np.int32)
    block = hard_negative_similarity(USER, ITEM[:1], indices).numpy()
    expected = np.full((2, 4), MASKED_LOGIT, np.float32)
    expected[1, 3] = USER[1] @ ITEM[0]
    np.testing.assert_allclose(block, expected, rtol=1e-6)


def test_no_hard_negatives_gives_no_columns() -> None:
    empty = np.zeros((0, 2), np.int64)
    block = hard_negative_similarity(USER, ITEM[:0], empty)
    assert block.shape == (2, 0)
    sim = match_similarity(USER, ITEM[:4], False, hard_neg_indices=empty)
    np.testing.assert_allclose(sim, sampled_similarity(USER, ITEM[:4]))


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        ([[0, 1], [1, 0], [0, 1]], "duplicate"),
        ([[2, 0]], "row >= batch size"),
        ([[-1, 0]], "row < 0"),
        ([[0, -1]], "column < 0"),
    ],
)
def test_bad_hard_indices_raise(indices: list, message: str) -> None:
    indices = np.array(indices, np.int64)
    items = ITEM[: len(indices)]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        hard_negative_similarity(USER, items, indices)
    # Inside a graph with unknown shapes the check runs at execution time.
    graph_fn = tf.function(
        hard_negative_similarity,
        input_signature=[
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None, 2], tf.int64),
        ],
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        graph_fn(USER, items, indices)


def test_graph_traces_once_for_any_batch() -> None:
    traces = []

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None, 2], tf.int64),
        ]
    )
    def sim_fn(
        user: tf.Tensor, item: tf.Tensor, hard: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        traces.append(1)
        return (
            match_similarity(user, item, False, hard_neg_indices=hard),
            match_similarity(user, item, True),
            target_columns(match_similarity(user, item, True), True),
        )

    sampled, in_batch, targets = sim_fn(USER, ITEM, HARD)
    np.testing.assert_allclose(
        sampled, match_similarity(USER, ITEM, False, HARD), rtol=1e-6
    )
    np.testing.assert_array_equal(targets, [0, 1])
    user3 = RNG.normal(size=(3, 4)).astype(np.float32)
    item3 = RNG.normal(size=(5, 4)).astype(np.float32)
    hard3 = np.array([[2, 0]], np.int64)
    sampled, in_batch, targets = sim_fn(user3, item3, hard3)
    assert sampled.shape == (3, 1 + 1 + 1)
    assert in_batch.shape == (3, 5)
    np.testing.assert_array_equal(targets, [0, 1, 2])
    assert len(traces) == 1
