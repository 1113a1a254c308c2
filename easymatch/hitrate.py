"""Hitrate and recall@K of top-k lists, as TorchEasyRec's tools/hitrate.py.

For a user u with ground truth G_u (a set of index rows, of size |G_u|
counting ids missing from the index) and top-K rows T_u:
hit_u = |T_u ∩ G_u|, hitrate@K = Σ hit_u / Σ |G_u| (TorchEasyRec's total
hitrate, a micro average) and recall@K = mean_u hit_u / |G_u|. Rows are
index rows; -1 pads a list and never hits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def drop_excluded(
    rows: np.ndarray, exclude: Sequence[np.ndarray], k: int
) -> np.ndarray:
    """The first k rows of each line not in its exclude list (-1 padded)."""
    out = np.full((len(rows), k), -1, dtype=np.int64)
    for u, (line, excl) in enumerate(zip(rows, exclude, strict=True)):
        kept = line[(line >= 0) & ~np.isin(line, excl)][:k]
        out[u, : len(kept)] = kept
    return out


def popularity_top_k(
    counts: np.ndarray, exclude: Sequence[np.ndarray], k: int
) -> np.ndarray:
    """Most-counted rows first (ties: lower row), minus each user's seen."""
    order = np.argsort(-counts, kind="stable")
    fetch = min(len(order), k + max((len(e) for e in exclude), default=0))
    top = np.broadcast_to(order[:fetch], (len(exclude), fetch))
    return drop_excluded(top, exclude, k)


def hit_metrics(
    rows: np.ndarray,
    gt_rows: Sequence[set[int]],
    gt_sizes: np.ndarray,
    ks: Sequence[int],
) -> dict[str, float]:
    """{"hitrate@K": Σhit/Σ|G|, "recall@K": mean hit/|G|} for each K."""
    hits = np.array(
        [[r in g for r in line] for line, g in zip(rows, gt_rows, strict=True)],
        dtype=bool,
    ).reshape(rows.shape)
    sizes = np.asarray(gt_sizes, dtype=np.float64)
    result = {}
    for k in ks:
        hit = hits[:, :k].sum(axis=1)
        result[f"hitrate@{k}"] = float(hit.sum() / sizes.sum())
        result[f"recall@{k}"] = float(np.mean(hit / sizes))
    return result


def overlap(
    found: np.ndarray, exact: np.ndarray, ks: Sequence[int]
) -> dict[str, float]:
    """{"recall@K": mean |found@K ∩ exact@K| / |exact@K|}: ScaNN vs exact."""
    result = {}
    for k in ks:
        shares = []
        for f, e in zip(found[:, :k], exact[:, :k], strict=True):
            e = e[e >= 0]
            shares.append(len(np.intersect1d(f, e)) / len(e) if len(e) else 1)
        result[f"recall@{k}"] = float(np.mean(shares))
    return result
