"""tools/gen_planted_data.py: determinism, the draws, the oracle."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from gen_planted_data import (  # tools/ is on sys.path (conftest)
    expected_recall,
    generate,
    hits_at_k,
    softmax,
    true_scores,
    zipf_log_popularity,
)

FILES = ("train.parquet", "eval.parquet", "test.parquet", "item.parquet")
TINY = dict(num_users=3, num_items=5, dim=2, rows_per_user=4)


def read(directory) -> dict:
    tables = {name: pq.read_table(directory / name) for name in FILES}
    truth = np.load(directory / "truth.npz")
    return {**tables, **{key: truth[key] for key in truth.files}}


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    summaries = [
        generate(str(tmp_path / name), seed=seed, **TINY)
        for name, seed in (("a", 3), ("b", 3), ("c", 4))
    ]
    a, b, c = (read(tmp_path / name) for name in "abc")
    for key in a:
        assert (
            a[key].equals(b[key])
            if key in FILES
            else np.array_equal(a[key], b[key])
        ), key
    assert summaries[0] == summaries[1]
    assert not np.array_equal(a["user_factors"], c["user_factors"])
    train = a["train.parquet"]
    assert train.num_rows == 12 and train.column_names == [
        "user_id",
        "item_id",
        "label",
    ]
    # Every user has rows_per_user rows; eval and test one each.
    assert (
        sorted(train.column("user_id").to_pylist())
        == [0] * 4 + [1] * 4 + [2] * 4
    )
    assert a["test.parquet"].column("user_id").to_pylist() == [0, 1, 2]
    assert a["item.parquet"].column("item_id").to_pylist() == list(range(5))


def test_oracle_recall_is_its_definition_on_a_tiny_case(tmp_path):
    n = 120
    summary = generate(
        str(tmp_path),
        seed=1,
        num_users=3,
        num_items=n,
        dim=2,
        rows_per_user=1,
    )
    truth = read(tmp_path)
    u, v, log_pop = (
        truth["user_factors"],
        truth["item_factors"],
        truth["log_pop"],
    )
    np.testing.assert_allclose(np.exp(log_pop).sum(), 1.0)
    test_items = truth["test.parquet"].column("item_id").to_pylist()
    for k in (10, 50, 100):
        expected, hits = [], []
        for user in range(3):
            # P(j | u) ∝ exp(u·v_j) · pop_j, item by item; the oracle takes
            # the k most probable items.
            weights = [np.exp(u[user] @ v[j] + log_pop[j]) for j in range(n)]
            p = np.array(weights) / sum(weights)
            best = sorted(range(n), key=lambda j: -p[j])[:k]
            expected.append(sum(p[j] for j in best))
            hits.append(test_items[user] in best)
        assert summary[f"oracle_recall@{k}"] == pytest.approx(np.mean(expected))
        assert summary[f"oracle_test_hits@{k}"] == pytest.approx(np.mean(hits))
    assert 0 < summary["oracle_recall@10"] < summary["oracle_recall@100"] < 1


def test_recall_helpers_by_hand():
    scores = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    p = np.array([[0.5, 0.2, 0.3], [0.1, 0.1, 0.8]])
    # Top-1: items 0 and 1; top-2: {0, 2} and {1, 2}.
    assert expected_recall(scores, p, np.array([0, 1]), 1) == pytest.approx(0.3)
    assert expected_recall(scores, p, np.array([0, 1]), 2) == pytest.approx(
        (0.8 + 0.9) / 2
    )
    assert hits_at_k(scores, np.array([0, 1, 1]), np.array([2, 1, 0]), 2) == (
        pytest.approx(2 / 3)
    )


def test_draws_follow_the_true_distribution(tmp_path):
    generate(
        str(tmp_path),
        seed=5,
        num_users=2,
        num_items=4,
        dim=2,
        rows_per_user=20_000,
    )
    truth = read(tmp_path)
    p = softmax(
        true_scores(
            truth["user_factors"], truth["item_factors"], truth["log_pop"]
        )
    )
    train = truth["train.parquet"]
    users = np.array(train.column("user_id"))
    items = np.array(train.column("item_id"))
    for user, item in itertools.product(range(2), range(4)):
        share = np.mean(items[users == user] == item)
        # 20k draws: a standard error of at most 0.0036.
        assert share == pytest.approx(p[user, item], abs=0.015)


def test_zipf_popularity():
    log_pop = zipf_log_popularity(4, 1.0, np.random.default_rng(0))
    pop = np.sort(np.exp(log_pop))[::-1]
    np.testing.assert_allclose(
        pop, np.array([1, 1 / 2, 1 / 3, 1 / 4]) / (1 + 1 / 2 + 1 / 3 + 1 / 4)
    )


def test_bad_sizes_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="num_items must be >= 1"):
        generate(str(tmp_path), num_items=0)
