"""An item index tuned to a target recall@100 against exact search.

ScaNN's recall depends on the corpus: a tree that searches 5% of its
leaves finds nearly every neighbour on clustered embeddings and far fewer
on weakly clustered ones. So the builder measures instead of guessing:
it builds one tree (√N leaves, asymmetric hashing), then searches a
query sample with ever wider settings (more leaves, then more candidates
re-scored exactly; both are search-time arguments, so the tree is built
once) until recall@100 against brute force, less two standard errors of
its mean over the sample, reaches the target. Brute
force is used instead when the corpus is small, when the cheapest setting
that meets the target is slower than brute force, or when no setting
meets it. ``index.json`` records the choice, every setting tried, the
query sample, and both searches' queries per second.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from easymatch.errors import EasyMatchError
from easymatch.export.scann_index import (
    BRUTE_FORCE_MAX_ITEMS,
    ItemIndex,
    build_index,
    tree_params,
)

DEFAULT_TARGET_RECALL = 0.95
RECALL_AT = 100
QUERY_SAMPLE = 1000
# Perturbed items as queries: noise of this share of each dimension's
# spread over the corpus, so queries sit among the items, not on them.
PERTURBATION = 0.5
PERTURBED = "perturbed item embeddings"
# Candidates re-scored exactly, as multiples of k.
REORDER_FACTORS = (10, 20, 50)
# Each wider setting searches this many times the leaves.
LEAVES_GROWTH = 1.5


def check_target_recall(target: float) -> float:
    if not 0 < target <= 1:
        raise EasyMatchError(f"target recall must be in (0, 1], got {target:g}")
    return float(target)


def perturbed_items(embeddings: np.ndarray, count: int) -> np.ndarray:
    """``count`` items (fixed seed) plus Gaussian noise per dimension."""
    rng = np.random.default_rng(0)
    rows = rng.choice(len(embeddings), min(count, len(embeddings)), False)
    items = np.asarray(embeddings[np.sort(rows)], np.float32)
    spread = np.asarray(embeddings, np.float32).std(axis=0)
    noise = rng.standard_normal(items.shape).astype(np.float32)
    return items + PERTURBATION * spread * noise


def leaves_ladder(num_leaves: int) -> list[int]:
    """Leaves to search, widest last: from 1% (at least 10) to all.

    Well-clustered corpora meet 0.95 with few leaves, and each leaf
    searched costs time: the ladder starts low, and each step costs less
    than the tuning's brute-force reference.
    """
    leaves = min(num_leaves, max(10, math.ceil(num_leaves / 100)))
    ladder = [leaves]
    while leaves < num_leaves:
        leaves = min(num_leaves, math.ceil(leaves * LEAVES_GROWTH))
        ladder.append(leaves)
    return ladder


def recall_bounds(found: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """Mean recall of the found rows against the exact ones, and that mean
    less two standard errors: the target must hold with that margin, so a
    sample that happens to be easy does not decide it."""
    shares = np.array(
        [
            len(np.intersect1d(f, e[e >= 0])) / max(1, (e >= 0).sum())
            for f, e in zip(found, exact, strict=True)
        ]
    )
    error = shares.std() / math.sqrt(len(shares)) if len(shares) > 1 else 0
    return float(shares.mean()), float(shares.mean() - 2 * error)


def _timed(search, *args, **kwargs) -> tuple[np.ndarray, float]:
    """Rows of a batched search, and its queries per second (the better
    of two runs: the machine's other load only slows a run down)."""
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        rows, _ = search(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return np.asarray(rows), len(args[0]) / max(best, 1e-9)


def tune_index(
    embeddings: np.ndarray,
    ids: np.ndarray,
    similarity: str,
    target_recall: float = DEFAULT_TARGET_RECALL,
    queries: np.ndarray | None = None,
    query_source: str = PERTURBED,
    params: dict[str, Any] | None = None,
) -> ItemIndex:
    """The cheapest index found whose measured recall@100 (against brute
    force, on ``queries``, else perturbed items) reaches the target.

    Given ``params`` are built as they are and only measured.
    """
    check_target_recall(target_recall)
    exact = build_index(
        embeddings, ids, similarity, {"algorithm": "brute_force"}
    )
    if queries is None or len(queries) == 0:
        queries, query_source = (
            perturbed_items(exact.embeddings, QUERY_SAMPLE),
            PERTURBED,
        )
    queries = exact.prepare_queries(queries[:QUERY_SAMPLE])
    k = min(RECALL_AT, len(exact.ids))
    truth, exact_qps = _timed(
        exact.searcher.search_batched_parallel, queries, k
    )
    report: dict[str, Any] = {
        "target_recall": target_recall,
        "k": k,
        "queries": {"source": query_source, "count": len(queries)},
        "brute_force_qps": round(exact_qps, 1),
    }
    num_items, dim = exact.embeddings.shape
    if params is not None and params.get("algorithm") == "brute_force":
        return _finish(exact, report, None, "given")
    if params is None and num_items < BRUTE_FORCE_MAX_ITEMS:
        return _finish(
            exact, report, None, f"fewer than {BRUTE_FORCE_MAX_ITEMS} items"
        )
    tree = build_index(
        embeddings, ids, similarity, params or tree_params(num_items, dim)
    )
    search = tree.searcher.search_batched_parallel

    def trial(leaves: int, reorder: int) -> dict[str, Any]:
        rows, qps = _timed(
            search,
            queries,
            final_num_neighbors=k,
            pre_reorder_num_neighbors=max(k, reorder),
            leaves_to_search=leaves,
        )
        recall, lower = recall_bounds(rows, truth)
        return {
            "num_leaves_to_search": leaves,
            "reorder": reorder,
            "recall": round(recall, 5),
            "recall_lower_bound": round(lower, 5),
            "qps": round(qps, 1),
        }

    if params is not None:
        chosen = trial(
            tree.params["num_leaves_to_search"], tree.params["reorder"]
        )
        report["trials"] = [chosen]
        return _finish(tree, report, chosen, "given")
    trials: list[dict[str, Any]] = []
    report["trials"] = trials
    # Widest last, each setting slower than the one before: more leaves
    # first (the tree is what loses neighbours), then, searching all
    # leaves, more candidates re-scored (what quantization loses).
    reorders = sorted({min(num_items, f * k) for f in REORDER_FACTORS})
    ladder = leaves_ladder(tree.params["num_leaves"])
    plan = [(leaves, reorders[0]) for leaves in ladder]
    plan += [(ladder[-1], reorder) for reorder in reorders[1:]]
    for leaves, reorder in plan:
        trials.append(trial(leaves, reorder))
        if trials[-1]["recall_lower_bound"] >= target_recall:
            if trials[-1]["qps"] < exact_qps:
                return _finish(
                    exact, report, trials[-1], "met the target slower"
                )
            tree.params.update(num_leaves_to_search=leaves, reorder=reorder)
            return _finish(tree, report, trials[-1], "met the target")
        if trials[-1]["qps"] < exact_qps:
            return _finish(
                exact, report, trials[-1], "slower before meeting the target"
            )
    return _finish(exact, report, trials[-1], "no setting met the target")


def _finish(
    index: ItemIndex,
    report: dict[str, Any],
    last: dict[str, Any] | None,
    reason: str,
) -> ItemIndex:
    """Records the tuning in index.json; brute force's recall is 1."""
    brute_force = index.params["algorithm"] == "brute_force"
    report.update(
        algorithm=index.params["algorithm"],
        reason=reason,
        recall=1.0 if brute_force else last["recall"],
        scann_qps=None if last is None else last["qps"],
    )
    index.info["tuning"] = report
    return index
