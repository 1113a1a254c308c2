"""FrequencyEstimator: hand-computed streams, collisions, two replicas."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from test_retrieval_loss import run_python

from easymatch.retrieval.frequency import FrequencyEstimator

# With 16 buckets, hash 0 reads id bits 0-3 and hash 1 bits 4-7.
A = 1 | 1 << 4
B = 2 | 2 << 4
# Shares A's hash-0 bucket only.
C = 1 | 3 << 4


def test_hand_computed_stream():
    estimator = FrequencyEstimator(num_buckets=16, num_hashes=2, alpha=0.5)
    for ids in ([A, B], [A], [A, A], [B]):
        estimator.update(tf.constant(ids, tf.int64))
    # A: first seen at step 1 (δ = 1 step so far), then every step: δ = 1.
    # B: steps 1 and 4: δ = 0.5·1 + 0.5·(4 − 1) = 2.
    # C: never seen; its hash-0 bucket is A's, but hash 1's is empty, and
    # the largest δ over the hashes wins: seen once in step + 1 = 5 steps.
    got = estimator.log_probability(tf.constant([[A, B, C]], tf.int64))
    np.testing.assert_allclose(got, [[0.0, -np.log(2.0), -np.log(5.0)]])
    assert int(estimator.step.numpy()) == 4
    interval = estimator.interval.numpy().reshape(2, 16)
    assert interval[0, 1] == interval[1, 1] == 1.0
    assert interval[0, 2] == interval[1, 2] == 2.0
    np.testing.assert_array_equal(
        estimator.last_seen.numpy().reshape(2, 16)[:, [1, 2]], [[3, 4]] * 2
    )


def test_unseen_before_any_step_is_probability_one():
    estimator = FrequencyEstimator(num_buckets=16, num_hashes=2)
    np.testing.assert_array_equal(
        estimator.log_probability(tf.constant([A], tf.int64)), [0.0]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_buckets": 12}, "power of two"),
        ({"num_buckets": 1 << 32, "num_hashes": 2}, r"\[1, 63\]"),
        ({"alpha": 0.0}, "alpha"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str):
    with pytest.raises(ValueError, match=message):
        FrequencyEstimator(**kwargs)


MIRRORED_SCRIPT = """
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from easymatch.retrieval.frequency import FrequencyEstimator

    case = json.load(sys.stdin)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        estimator = FrequencyEstimator(num_buckets=16, num_hashes=2, alpha=0.5)

    @tf.function
    def step(ids):
        def replica(ids):
            estimator.update(ids)
            return estimator.log_probability(tf.constant(case["query"]))
        return strategy.run(replica, (ids,))

    for first, second in case["steps"]:
        ids = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(
                first if ctx.replica_id_in_sync_group == 0 else second,
                tf.int64,
            )
        )
        out = strategy.experimental_local_results(step(ids))
    print(json.dumps({
        "replicas": [o.numpy().tolist() for o in out],
        "step": int(estimator.step.numpy()),
        "interval": estimator.interval.numpy().tolist(),
    }))
"""


def test_two_replicas_estimate_the_global_stream():
    steps = [([A], [B]), ([A, C], [A]), ([A], [C]), ([B], [A])]
    query = [A, B, C, 7]
    got = run_python(MIRRORED_SCRIPT, {"steps": steps, "query": query})
    single = FrequencyEstimator(num_buckets=16, num_hashes=2, alpha=0.5)
    for first, second in steps:
        single.update(tf.constant(first + second, tf.int64))
    expected = single.log_probability(tf.constant(query, tf.int64)).numpy()
    # One update per step, not per replica, over both replicas' ids.
    assert got["step"] == 4
    np.testing.assert_allclose(got["interval"], single.interval.numpy())
    for replica in got["replicas"]:
        np.testing.assert_allclose(replica, expected, rtol=1e-6)
