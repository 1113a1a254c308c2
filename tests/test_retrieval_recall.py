"""RecallAtK: SPEC §4 T1/T2, both target forms, and a numpy reference."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from easymatch.retrieval.recall_at_k import RecallAtK

T1_PRED = np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]], np.float32)
T1_TRUE = np.array([[1, 0, 0, 0], [1, 0, 0, 0]], bool)


def reference(preds: list, trues: list, top_k: int) -> float:
    hits = total = 0
    for pred, true in zip(preds, trues, strict=True):
        top = np.argsort(-pred, axis=1)[:, :top_k]
        hits += np.take_along_axis(true, top, axis=1).sum()
        total += true.sum()
    return hits / total if total else 0.0


def test_t1() -> None:
    metric = RecallAtK(top_k=2)
    assert metric.name == "recall@2"
    metric.update_state(T1_TRUE, T1_PRED)
    assert float(metric.result()) == pytest.approx(0.5)
    assert int(metric.num_true_pos) == 1 and int(metric.num_total) == 2


def test_t2_modes_with_target_columns() -> None:
    in_batch = RecallAtK(2)
    in_batch.update_state(
        np.array([0, 1]), [[0.04, 0.06, 0.08], [0.06, 0.09, 0.12]]
    )
    assert float(in_batch.result()) == pytest.approx(0.5)
    sampler = RecallAtK(2)
    sampler.update_state(np.zeros(2, np.int32), [[0.04, 0.08], [0.09, 0.12]])
    assert float(sampler.result()) == pytest.approx(1.0)


def test_vector_and_matrix_targets_agree() -> None:
    cols = np.array([3, 0])
    by_cols, by_matrix = RecallAtK(1), RecallAtK(1)
    by_cols.update_state(cols, T1_PRED)
    by_matrix.update_state(np.eye(4, dtype=np.float32)[cols], T1_PRED)
    assert float(by_cols.result()) == float(by_matrix.result()) == 1.0


def test_vector_target_out_of_range_raises() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match=">= C"):
        RecallAtK(1).update_state(np.array([0, 4]), T1_PRED)


def test_micro_average_over_updates() -> None:
    metric = RecallAtK(top_k=1)
    metric.update_state(T1_TRUE, T1_PRED)  # 1 hit of 2
    three = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.5], [0.0, 0.3, 0.1]])
    metric.update_state(
        np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1]]), three
    )  # 2 hits of 5
    # Micro: 3 / 7, not the mean of 1/2 and 2/5.
    assert float(metric.result()) == pytest.approx(3 / 7)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    assert int(metric.num_total) == 0


def test_top_k_beyond_columns_counts_every_positive() -> None:
    metric = RecallAtK(top_k=10)
    metric.update_state(np.array([[1, 0, 1], [0, 1, 1]]), np.ones((2, 3)))
    assert float(metric.result()) == 1.0


def test_config_round_trip() -> None:
    metric = RecallAtK(top_k=5, name="eval_recall")
    clone = RecallAtK.from_config(metric.get_config())
    assert (clone.top_k, clone.name) == (5, "eval_recall")
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert isinstance(clone, RecallAtK) and clone.top_k == 5
    with pytest.raises(ValueError, match="top_k"):
        RecallAtK(top_k=0)


def test_graph_traces_once_for_any_shape() -> None:
    metric = RecallAtK(top_k=2)
    traces = []

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int32),
            tf.TensorSpec([None, None], tf.float32),
        ]
    )
    def update(cols: tf.Tensor, pred: tf.Tensor) -> None:
        traces.append(1)
        metric.update_state(cols, pred)

    update(np.array([2, 1], np.int32), T1_PRED)  # 2 hits
    update(np.array([1], np.int32), np.array([[0.5, 0.1, 0.9]], np.float32))
    update(np.array([0], np.int32), np.array([[0.3]], np.float32))  # k = 1
    assert len(traces) == 1
    assert float(metric.result()) == pytest.approx(3 / 4)


@st.composite
def batches(draw: st.DrawFn) -> tuple[list, list, int]:
    num_cols = draw(st.integers(1, 12))
    top_k = draw(st.integers(1, 14))
    preds, trues = [], []
    for _ in range(draw(st.integers(1, 3))):
        rows = draw(st.integers(1, 6))
        seed = draw(st.integers(0, 2**31))
        rng = np.random.default_rng(seed)
        # A permutation per row: tie-free, so any top-k order agrees.
        preds.append(
            np.argsort(rng.random((rows, num_cols)), axis=1).astype(np.float32)
        )
        trues.append(rng.random((rows, num_cols)) < 0.3)
    return preds, trues, top_k


@settings(max_examples=40, deadline=None)
@given(batches())
def test_matches_numpy_reference(case: tuple[list, list, int]) -> None:
    preds, trues, top_k = case
    metric = RecallAtK(top_k)
    for pred, true in zip(preds, trues, strict=True):
        metric.update_state(true, pred)
    expected = reference(preds, trues, top_k)
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)
