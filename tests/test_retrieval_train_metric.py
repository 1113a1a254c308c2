"""train_metrics' decay_rate / decay_step: TorchEasyRec's moving average.

Hand-computed from tzrec/metrics/train_metric_wrapper.py: every
decay_step updates the window's value v replaces the average the first
time, then value = rate · value + (1 − rate) · v.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.retrieval.recall_at_k import RecallAtK
from easymatch.retrieval.train_metric import DecayedMetric

# 2 rows, positives on the diagonal: row 0 ranks its positive first,
# row 1 second.
TARGETS = tf.constant([0, 1])
HALF = tf.constant([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1]])  # recall@1 = 1/2
ALL = tf.constant([[0.9, 0.1, 0.0], [0.1, 0.5, 0.2]])  # recall@1 = 1
NONE = tf.constant([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2]])  # recall@1 = 0


def test_decay_step_one_is_an_exponential_average() -> None:
    metric = DecayedMetric(RecallAtK(1), decay_rate=0.9, decay_step=1)
    metric.update_state(TARGETS, HALF)
    assert float(metric.result()) == pytest.approx(0.5)
    metric.update_state(TARGETS, ALL)
    assert float(metric.result()) == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)
    metric.update_state(TARGETS, NONE)
    assert float(metric.result()) == pytest.approx(0.9 * 0.55)


def test_windows_of_decay_step_updates_in_a_tf_function() -> None:
    metric = DecayedMetric(RecallAtK(1), decay_rate=0.5, decay_step=2)
    update = tf.function(metric.update_state)
    update(TARGETS, HALF)
    assert float(metric.result()) == 0.0  # no window has ended yet
    update(TARGETS, ALL)  # window 1: 3 hits of 4
    assert float(metric.result()) == pytest.approx(0.75)
    metric.reset_state()  # the loop resets after each log: value stays
    update(TARGETS, NONE)
    update(TARGETS, NONE)  # window 2: 0
    assert float(metric.result()) == pytest.approx(0.5 * 0.75)


def test_saves_and_reloads() -> None:
    metric = DecayedMetric(RecallAtK(5), 0.8, 7, name="train_recall@5")
    config = keras.saving.serialize_keras_object(metric)
    again = keras.saving.deserialize_keras_object(config)
    assert isinstance(again, DecayedMetric)
    assert (again.decay_rate, again.decay_step, again.name) == (
        0.8,
        7,
        "train_recall@5",
    )
    assert again.metric.top_k == 5
    np.testing.assert_array_equal(again.result(), 0.0)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="decay_rate"):
        DecayedMetric(RecallAtK(1), decay_rate=1.5)


def test_config_train_metrics_build_decayed_metrics() -> None:
    from conftest import DEMO_CONFIG

    from easymatch.config import load_pipeline_config
    from easymatch.models.builder import build_model
    from easymatch.run_context import RunContext

    config = load_pipeline_config(
        str(DEMO_CONFIG),
        '{"model_config.train_metrics": ['
        '{"recall_at_k": {"top_k": 2}, "decay_rate": 0.5, "decay_step": 3},'
        '{"recall_at_k": {"top_k": 1}}]}',
    )
    model = build_model(RunContext(config).specs.model)
    first, second = model.task.train_recall_metrics
    assert (first.name, first.decay_rate, first.decay_step) == (
        "train_recall@2",
        0.5,
        3,
    )
    assert first.metric.top_k == 2
    # TorchEasyRec's proto defaults apply when unset
    assert second.decay_rate == pytest.approx(0.9)
    assert second.decay_step == 100
