"""Exact-count logQ and the streaming estimator's options, by hand."""

from __future__ import annotations

import json

import keras
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import ROOT

from easymatch.config import load_pipeline_config
from easymatch.data.dataset import hash_ids
from easymatch.retrieval.candidate_probability import (
    ExactFrequency,
    build_candidate_probability,
)
from easymatch.retrieval.frequency import FrequencyEstimator
from easymatch.run_context import RunContext
from easymatch.side_inputs import ITEM_ID

# With 16 buckets, hash 0 reads id bits 0-3 and hash 1 bits 4-7.
A = 1 | 1 << 4
B = 2 | 2 << 4
C = 1 | 3 << 4  # shares A's hash-0 bucket only
D = 9


def test_exact_frequency_hand_computed():
    layer = ExactFrequency(item_ids=[B, A], counts=[2, 6])
    # N = 8; a batch of 3 ids: log(3 · c / 8); D is unseen and counts once.
    got = layer.log_probability(tf.constant([A, B, D], tf.int64))
    np.testing.assert_allclose(
        got, np.log([3 * 6 / 8, 3 * 2 / 8, 3 * 1 / 8]), rtol=1e-6
    )
    # The batch size is the number of ids asked about.
    got = layer.log_probability(tf.constant([A], tf.int64))
    np.testing.assert_allclose(got, np.log([6 / 8]), rtol=1e-6)


def test_exact_frequency_save_and_reload():
    # 63-bit ids survive the JSON config.
    big = (1 << 63) - 2
    layer = ExactFrequency(item_ids=[B, big], counts=[2, 6], name="f")
    text = json.dumps(keras.layers.serialize(layer))
    again = keras.layers.deserialize(json.loads(text))
    ids = tf.constant([big, D, B], tf.int64)
    np.testing.assert_array_equal(
        again.log_probability(ids), layer.log_probability(ids)
    )
    assert again.name == "f" and not again.weights
    # Under tf.function with an unknown batch size too.
    traced = tf.function(
        again.log_probability,
        input_signature=[tf.TensorSpec([None], tf.int64)],
    )
    np.testing.assert_allclose(
        traced(ids), np.log([3 * 6 / 8, 3 / 8, 3 * 2 / 8]), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"item_ids": [A, B], "counts": [1]}, "differ in length"),
        ({"item_ids": [A], "counts": [0]}, ">= 1"),
        ({"item_ids": [A, A], "counts": [1, 1]}, "unique"),
    ],
)
def test_exact_frequency_bad_arguments(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        ExactFrequency(**kwargs)


def test_exact_frequency_without_counts_says_what_is_missing():
    layer = build_candidate_probability({"source": "train_counts"}, None, "f")
    with pytest.raises(ValueError, match="needs the item counts"):
        layer.log_probability(tf.constant([A], tf.int64))
    with pytest.raises(ValueError, match="source must be one of"):
        build_candidate_probability({"source": "guess"}, None, "f")


def test_count_repeats_hand_computed():
    estimator = FrequencyEstimator(
        num_buckets=16, num_hashes=2, alpha=0.5, count_repeats=True
    )
    for ids in ([A, A, B], [A], [B, B], [A, A, A, A]):
        estimator.update(tf.constant(ids, tf.int64))
    # A: gap/count 1/2 (first: δ = 0.5), 1/1 → 0.75, then (4 − 2)/4 → 0.625.
    # B: 1/1 (δ = 1), then (3 − 1)/2 = 1 → 1. C: unseen under hash 1.
    got = estimator.log_probability(tf.constant([A, B, C], tf.int64))
    np.testing.assert_allclose(got, -np.log([0.625, 1.0, 5.0]), rtol=1e-6)
    # More than once per batch on average: log q > 0, as B · c / N would be.
    assert got[0] > 0


def test_warm_start_is_a_running_mean_then_the_moving_average():
    estimator = FrequencyEstimator(
        num_buckets=16, num_hashes=2, alpha=0.25, warm_start=True
    )
    a_steps = {1, 3, 4, 8, 14}
    for step in range(1, 15):
        ids = [A] if step in a_steps else [B]
        estimator.update(tf.constant(ids, tf.int64))
    # A's gaps 1, 2, 1, 4: their mean is 2 (weights 1, 1/2, 1/3, 1/4 =
    # alpha); the fifth gap, 6, gets alpha: 0.75 · 2 + 0.25 · 6 = 3.
    got = estimator.log_probability(tf.constant([A], tf.int64))
    np.testing.assert_allclose(got, [-np.log(3.0)], rtol=1e-6)
    sightings = estimator.sightings.numpy().reshape(2, 16)
    assert sightings[0, 1] == sightings[1, 1] == 5


def test_estimator_options_save_and_reload():
    estimator = FrequencyEstimator(
        num_buckets=16, alpha=0.5, count_repeats=True, warm_start=True
    )
    again = keras.layers.deserialize(keras.layers.serialize(estimator))
    assert (again.count_repeats, again.warm_start, again.num_buckets) == (
        True,
        True,
        16,
    )


def test_counts_of_a_hand_written_input_reach_the_loss(tmp_path):
    # Items 7 ×4, 5 ×2, 3, 9: N = 8.
    items = [7, 7, 5, 7, 3, 5, 7, 9]
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(range(8), pa.int64()),
                "item_id": pa.array(items, pa.int64()),
                "label": [1.0] * 8,
            }
        ),
        tmp_path / "train.parquet",
    )
    config = load_pipeline_config(
        str(ROOT / "samples" / "dssm_planted.config"),
        json.dumps(
            {
                "train_input_path": str(tmp_path / "train.parquet"),
                "eval_input_path": "",
                "model_dir": str(tmp_path / "model"),
                "data_config.batch_size": 4,
                "model_config.dssm.remove_accidental_hits": False,
            }
        ),
    )
    model = RunContext(config).create_model()
    assert (tmp_path / "model" / "item_counts.parquet").exists()
    batch = ["7", "5", "7", "9"]
    user = tf.constant(np.eye(4, 3), tf.float32)
    item = tf.constant([[1, 2, 0], [0, 1, 0], [3, 0, 1], [0, 0, 2]], tf.float32)
    similarity, logits = model.retrieval_logits(
        user, item, {ITEM_ID: hash_ids(tf.constant(batch))}
    )
    # B = 4 columns: log q = log(4 · c / 8) = log 2, 0, log 2, log 0.5.
    log_q = np.log([2.0, 1.0, 2.0, 0.5])
    expected = np.eye(4, 3) @ item.numpy().T - log_q[None, :]
    np.testing.assert_allclose(logits, expected, rtol=1e-6)
    np.testing.assert_allclose(
        similarity, np.eye(4, 3) @ item.numpy().T, rtol=1e-6
    )
