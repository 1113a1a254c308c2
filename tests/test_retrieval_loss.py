"""Loss chain: hand-computed steps, SPEC §4 T2, and TFRS as an oracle."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from easymatch.retrieval.loss import (
    append_hard_negatives,
    apply_temperature,
    logq_correction,
    mask_accidental_hits,
    per_example_softmax_cross_entropy,
    replica_loss_share,
    softmax_cross_entropy,
    weighted_loss_terms,
)
from easymatch.retrieval.similarity import (
    MASKED_LOGIT,
    in_batch_similarity,
)

REPO = Path(__file__).resolve().parents[1]
LOGITS = np.array([[1.0, 2.0, 0.5], [0.3, -1.0, 2.5]], np.float32)


def np_ce(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64)
    lse = np.log(np.exp(logits).sum(axis=1))
    return lse - logits[np.arange(len(logits)), targets]


def run_python(script: str, payload: dict, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_t2_losses() -> None:
    in_batch = [[0.04, 0.06, 0.08], [0.06, 0.09, 0.12]]
    loss = softmax_cross_entropy(in_batch, [0, 1])
    assert float(loss) == pytest.approx(1.108829, abs=1e-4)
    sampler = [[0.04, 0.08], [0.09, 0.12]]
    loss = softmax_cross_entropy(sampler, [0, 0])
    assert float(loss) == pytest.approx(0.710803, abs=1e-4)


def test_apply_temperature() -> None:
    np.testing.assert_allclose(apply_temperature(LOGITS, 0.5), LOGITS * 2)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(LOGITS, 0.0)


def test_logq_correction_subtracts_every_column() -> None:
    q = np.array([0.5, 0.25, 0.125], np.float32)
    out = logq_correction(LOGITS, np.log(q))
    # 1 - log 0.5 = 1 + 0.693147...; the positive column is corrected too.
    np.testing.assert_allclose(out[0], [1.693147, 3.386294, 2.579442], 1e-5)
    per_row = np.log(np.array([[0.5, 0.5, 0.5], [1.0, 0.1, 1.0]], np.float32))
    out = logq_correction(LOGITS, per_row)
    np.testing.assert_allclose(out[1], [0.3, -1.0 + 2.302585, 2.5], 1e-5)


def test_mask_accidental_hits() -> None:
    logits = np.arange(8, dtype=np.float32).reshape(2, 4)
    # Row 0's positive (col 0) is item 7, which also sits in col 2; row 1's
    # positive (col 1) is item 5, alone.
    out = mask_accidental_hits(logits, [0, 1], [7, 5], [7, 5, 7, 9]).numpy()
    expected = logits.copy()
    expected[0, 2] = MASKED_LOGIT
    np.testing.assert_array_equal(out, expected)
    strings = mask_accidental_hits(
        logits, [0, 1], [b"a", b"b"], [b"a", b"b", b"b", b"a"]
    ).numpy()
    expected = logits.copy()
    expected[0, 3] = expected[1, 2] = MASKED_LOGIT
    np.testing.assert_array_equal(strings, expected)


def test_append_hard_negatives() -> None:
    hard = np.array([[MASKED_LOGIT], [4.0]], np.float32)
    out = append_hard_negatives(LOGITS, hard).numpy()
    np.testing.assert_array_equal(out, np.concatenate([LOGITS, hard], 1))
    assert out.dtype == np.float32
    # The masked column contributes exactly nothing to row 0's loss.
    np.testing.assert_allclose(
        per_example_softmax_cross_entropy(out, [1, 0])[0],
        np_ce(LOGITS, np.array([1, 0]))[0],
        rtol=1e-6,
    )


def test_weighted_cross_entropy() -> None:
    targets = np.array([1, 2])
    losses = np_ce(LOGITS, targets)
    # ℓ_0 = log(e^1 + e^2 + e^0.5) - 2, ℓ_1 = log(e^0.3 + e^-1 + e^2.5) - 2.5
    np.testing.assert_allclose(losses, [0.4643688, 0.1319055], rtol=1e-6)
    got = per_example_softmax_cross_entropy(LOGITS, targets)
    np.testing.assert_allclose(got, losses, rtol=1e-6)
    w = np.array([3.0, 1.0], np.float32)
    expected = np.mean(losses * w) / np.mean(w)
    got = softmax_cross_entropy(LOGITS, targets, w)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    zero = softmax_cross_entropy(LOGITS, targets, np.zeros(2, np.float32))
    assert float(zero) == 0.0
    num, den, count = weighted_loss_terms(LOGITS, targets, w)
    assert float(num) == pytest.approx(np.sum(losses * w), rel=1e-6)
    assert (float(den), float(count)) == (4.0, 2.0)
    num, den, count = weighted_loss_terms(LOGITS, targets)
    assert float(num) == pytest.approx(losses.sum(), rel=1e-6)
    assert (float(den), float(count)) == (2.0, 2.0)
    # Outside a strategy the share is the whole loss.
    share = replica_loss_share(*weighted_loss_terms(LOGITS, targets, w)[:2])
    assert float(share) == pytest.approx(expected, rel=1e-6)


def test_chain_traces_once_for_any_batch() -> None:
    traces = []

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32),
            tf.TensorSpec([None, 3], tf.float32),
            tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None], tf.float32),
        ]
    )
    def loss_fn(user, item, ids, log_q, weight) -> tf.Tensor:
        traces.append(1)
        batch = tf.shape(user)[0]
        targets = tf.range(batch)
        logits = apply_temperature(in_batch_similarity(user, item), 0.1)
        logits = logq_correction(logits, log_q)
        logits = mask_accidental_hits(logits, targets, ids[:batch], ids)
        hard = tf.fill([batch, 1], MASKED_LOGIT)
        logits = append_hard_negatives(logits, hard)
        return softmax_cross_entropy(logits, targets, weight)

    rng = np.random.default_rng(3)
    for batch, items in [(4, 6), (2, 3)]:
        user = rng.normal(size=(batch, 3)).astype(np.float32)
        item = rng.normal(size=(items, 3)).astype(np.float32)
        ids = np.arange(items) % 3
        log_q = np.log(rng.uniform(0.1, 1.0, items)).astype(np.float32)
        weight = rng.uniform(0.5, 2.0, batch).astype(np.float32)
        logits = (user @ item.T) / 0.1 - log_q
        hit = (ids[:batch, None] == ids[None, :]) & ~np.eye(
            batch, items, 0, bool
        )
        logits = np.where(hit, -np.inf, logits)
        losses = np_ce(logits, np.arange(batch))
        expected = np.sum(losses * weight) / np.sum(weight)
        got = loss_fn(user, item, ids, log_q, weight)
        assert float(got) == pytest.approx(expected, rel=1e-5)
    assert len(traces) == 1


TFRS_SCRIPT = """
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_recommenders as tfrs

    case = json.load(sys.stdin)
    query = tf.constant(case["query"], tf.float32)
    cand = tf.constant(case["cand"], tf.float32)
    prob = tf.constant(case["prob"], tf.float32)
    ids = tf.constant(case["ids"], tf.int64)
    weight = tf.constant(case["weight"], tf.float32)
    out = {
        "plain": tfrs.tasks.Retrieval()(query, cand),
        "weighted": tfrs.tasks.Retrieval()(query, cand, sample_weight=weight),
        "temperature": tfrs.tasks.Retrieval(temperature=0.2)(query, cand),
        "logq": tfrs.tasks.Retrieval()(
            query, cand, candidate_sampling_probability=prob
        ),
        "hits": tfrs.tasks.Retrieval(remove_accidental_hits=True)(
            query, cand, candidate_ids=ids
        ),
    }
    reduction = tfrs.tasks.Retrieval()._loss.reduction
    out = {k: float(v) for k, v in out.items()}
    out["reduction"] = str(reduction)
    print(json.dumps(out))
"""


def test_against_tfrs_retrieval() -> None:
    rng = np.random.default_rng(11)
    batch, items = 6, 9  # 3 extra candidates act as shared negatives
    case = {
        "query": rng.normal(size=(batch, 5)).tolist(),
        "cand": rng.normal(size=(items, 5)).tolist(),
        "prob": rng.uniform(1e-3, 0.5, items).tolist(),
        "ids": [4, 1, 4, 2, 1, 3, 4, 8, 2],
        "weight": rng.uniform(0.0, 2.0, batch).tolist(),
    }
    tfrs_loss = run_python(TFRS_SCRIPT, case, TF_USE_LEGACY_KERAS="1")
    # TFRS's default CategoricalCrossentropy sums over the batch: Σ ℓ_i w_i.
    # SPEC's loss is a mean, so compare against the sum of our terms.
    assert tfrs_loss["reduction"].lower() in ("sum", "reduction.sum")
    sim = in_batch_similarity(case["query"], case["cand"])
    targets = np.arange(batch)

    def total(logits: tf.Tensor, weight: list | None = None) -> float:
        return float(weighted_loss_terms(logits, targets, weight)[0])

    mean = float(softmax_cross_entropy(sim, targets))
    assert tfrs_loss["plain"] == pytest.approx(total(sim), rel=1e-5)
    assert tfrs_loss["plain"] / batch == pytest.approx(mean, rel=1e-5)
    assert tfrs_loss["weighted"] == pytest.approx(
        total(sim, case["weight"]), rel=1e-5
    )
    scaled = apply_temperature(sim, 0.2)
    assert tfrs_loss["temperature"] == pytest.approx(total(scaled), rel=1e-5)
    # TFRS clips the probabilities to [1e-6, 1] before taking the log.
    log_q = np.log(np.clip(case["prob"], 1e-6, 1.0))
    corrected = logq_correction(sim, log_q)
    assert tfrs_loss["logq"] == pytest.approx(total(corrected), rel=1e-5)
    ids = np.array(case["ids"])
    masked = mask_accidental_hits(sim, targets, ids[:batch], ids)
    assert tfrs_loss["hits"] == pytest.approx(total(masked), rel=1e-5)
    # The case really has accidental hits.
    assert total(masked) != pytest.approx(total(sim), rel=1e-3)


REPLICA_SCRIPT = """
    import json, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from easymatch.retrieval.loss import (
        replica_loss_share,
        weighted_loss_terms,
    )
    from easymatch.retrieval.recall_at_k import RecallAtK

    case = json.load(sys.stdin)
    logits = np.array(case["logits"], np.float32)
    weight = np.array(case["weight"], np.float32)
    targets = np.array(case["targets"], np.int32)
    cut = case["cut"]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        scale = tf.Variable(1.0)
        recall = RecallAtK(top_k=2)

    def shard(ctx, values):
        first = ctx.replica_id_in_sync_group == 0
        return tf.constant(values[:cut] if first else values[cut:])

    def value_fn(values):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: shard(ctx, values)
        )

    @tf.function
    def step(x, t, w):
        with tf.GradientTape() as tape:
            num, den, _ = weighted_loss_terms(scale * x, t, w)
            share = replica_loss_share(num, den)
        recall.update_state(t, x)
        return share, tape.gradient(share, scale)

    share, grad = strategy.run(
        step, (value_fn(logits), value_fn(targets), value_fn(weight))
    )
    total = strategy.reduce("SUM", share, axis=None)
    grad = strategy.reduce("SUM", grad, axis=None)
    out = {"loss": float(total), "grad": float(grad)}
    out["recall"] = float(recall.result())
    print(json.dumps(out))
"""


def test_replica_shares_sum_to_global_loss_and_recall() -> None:
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(7, 4)).astype(np.float32)
    targets = rng.integers(0, 4, 7)
    weight = rng.uniform(0.0, 3.0, 7).astype(np.float32)
    # Uneven replica batches: a mean of per-replica means would be wrong.
    case = {
        "logits": logits.tolist(),
        "targets": targets.tolist(),
        "weight": weight.tolist(),
        "cut": 2,
    }
    got = run_python(REPLICA_SCRIPT, case)
    scale = tf.Variable(1.0)
    with tf.GradientTape() as tape:
        expected = softmax_cross_entropy(scale * logits, targets, weight)
    grad = tape.gradient(expected, scale)
    assert got["loss"] == pytest.approx(float(expected), rel=1e-5)
    assert got["grad"] == pytest.approx(float(grad), rel=1e-4)
    # RecallAtK's sum-aggregated counters add up across the replicas.
    top2 = np.argsort(-logits, axis=1)[:, :2]
    hits = (top2 == targets[:, None]).any(axis=1)
    assert got["recall"] == pytest.approx(hits.mean(), rel=1e-6)
