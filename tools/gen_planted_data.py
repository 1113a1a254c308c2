"""Planted-structure retrieval data with a known Bayes-optimal oracle.

    python tools/gen_planted_data.py --output_dir data/planted [--seed 0]
        [--num_users 2000] [--num_items 1000] [--dim 8]
        [--rows_per_user 30] [--zipf 1.0] [--factor_std 0.7]

Every user u and item j have latent factors (Gaussian, std `factor_std`
per dimension) and item j a Zipf popularity pop_j ∝ rank_j^-zipf (ranks a
random permutation). Each positive of u is an independent draw of
P(j | u) = softmax_j(u·v_j + log pop_j). The Bayes-optimal ranking of a
user's next item is therefore by the true score u·v_j + log pop_j, and no
model can have a higher expected Recall@K than
Σ_{j ∈ top K by true score} P(j | u). A model that ranks by u·v alone
(what an uncorrected in-batch softmax learns) loses the popularity term.

Writes, all seeded by `--seed`:

- train.parquet: user_id, item_id (int64), label (1.0); rows_per_user
  draws per user, shuffled;
- eval.parquet, test.parquet: one more draw per user each, same columns;
- item.parquet: item_id of every item;
- truth.npz: user_factors [U, d], item_factors [I, d], log_pop [I].

`samples/dssm_planted.config` trains a DSSM on it; `tools/bench_logq.py`
compares logQ options against the oracle.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def zipf_log_popularity(
    num_items: int, exponent: float, rng: np.random.Generator
) -> np.ndarray:
    """log pop_j, normalized (Σ pop = 1), rank_j a random permutation."""
    ranks = rng.permutation(num_items) + 1
    log_pop = -exponent * np.log(ranks.astype(np.float64))
    return log_pop - np.logaddexp.reduce(log_pop)


def true_scores(
    user_factors: np.ndarray, item_factors: np.ndarray, log_pop: np.ndarray
) -> np.ndarray:
    """[U, I] u·v_j + log pop_j: the log of P(j | u) up to a per-user
    constant."""
    return user_factors @ item_factors.T + log_pop[None, :]


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """[U, k] column indices of each row's k largest scores (ties: lower
    index first)."""
    order = np.argsort(-scores, axis=1, kind="stable")
    return order[:, :k]


def hits_at_k(scores: np.ndarray, users: np.ndarray, items: np.ndarray, k):
    """Recall@k of one held-out item per row (a hit or not), ranking every
    item by `scores[user]`."""
    ranked = top_k(scores[users], k)
    return float(np.mean(np.any(ranked == items[:, None], axis=1)))


def expected_recall(
    scores: np.ndarray, probabilities: np.ndarray, users: np.ndarray, k: int
) -> float:
    """Mean over `users` of Σ_{j ∈ top k by scores} P(j | u): the recall a
    fresh draw would have, without the test draw's sampling noise."""
    ranked = top_k(scores[users], k)
    return float(
        np.mean(np.take_along_axis(probabilities[users], ranked, axis=1).sum(1))
    )


def draw(
    probabilities: np.ndarray, users: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """One item per entry of `users`, from that user's distribution."""
    cumulative = np.cumsum(probabilities[users], axis=1)
    cumulative[:, -1] = 1.0
    uniform = rng.random(len(users))[:, None]
    return np.argmax(cumulative >= uniform, axis=1)


def _table(users: np.ndarray, items: np.ndarray) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.int64()),
            "item_id": pa.array(items, pa.int64()),
            "label": pa.array(np.ones(len(users)), pa.float64()),
        }
    )


def generate(
    output_dir: str,
    *,
    num_users: int = 2000,
    num_items: int = 1000,
    dim: int = 8,
    rows_per_user: int = 30,
    zipf: float = 1.0,
    factor_std: float = 0.7,
    seed: int = 0,
) -> dict:
    """Writes the files; returns a summary with the oracle's recall."""
    for name, value in (
        ("num_users", num_users),
        ("num_items", num_items),
        ("dim", dim),
        ("rows_per_user", rows_per_user),
    ):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(0.0, factor_std, (num_users, dim))
    item_factors = rng.normal(0.0, factor_std, (num_items, dim))
    log_pop = zipf_log_popularity(num_items, zipf, rng)
    scores = true_scores(user_factors, item_factors, log_pop)
    probabilities = softmax(scores)
    users = np.repeat(np.arange(num_users), rows_per_user)
    users = users[rng.permutation(len(users))]
    train_items = draw(probabilities, users, rng)
    held_out = np.arange(num_users)
    eval_items = draw(probabilities, held_out, rng)
    test_items = draw(probabilities, held_out, rng)
    os.makedirs(output_dir, exist_ok=True)
    pq.write_table(
        _table(users, train_items), os.path.join(output_dir, "train.parquet")
    )
    pq.write_table(
        _table(held_out, eval_items), os.path.join(output_dir, "eval.parquet")
    )
    pq.write_table(
        _table(held_out, test_items), os.path.join(output_dir, "test.parquet")
    )
    pq.write_table(
        pa.table({"item_id": pa.array(np.arange(num_items), pa.int64())}),
        os.path.join(output_dir, "item.parquet"),
    )
    np.savez(
        os.path.join(output_dir, "truth.npz"),
        user_factors=user_factors,
        item_factors=item_factors,
        log_pop=log_pop,
    )
    summary = {"train_rows": len(users), "test_rows": num_users}
    for k in (10, 50, 100):
        summary[f"oracle_recall@{k}"] = expected_recall(
            scores, probabilities, held_out, k
        )
        summary[f"oracle_test_hits@{k}"] = hits_at_k(
            scores, held_out, test_items, k
        )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--num_users", type=int, default=2000)
    parser.add_argument("--num_items", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=8)
    parser.add_argument("--rows_per_user", type=int, default=30)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--factor_std", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    args = vars(parser.parse_args())
    print(json.dumps(generate(args.pop("output_dir"), **args)))


if __name__ == "__main__":
    main()
