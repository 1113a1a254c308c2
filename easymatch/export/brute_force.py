"""Exact (brute-force) top-k by dot product: the reference ScaNN is
measured against, and the search small corpora need no tree for."""

from __future__ import annotations

import numpy as np

# Item scores held at once (64 MB of float32).
_CHUNK_SCORES = 1 << 24


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as the towers do: x / max(‖x‖, 1e-12)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def exact_search(
    embeddings: np.ndarray,
    queries: np.ndarray,
    k: int,
    exclude: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-k rows by dot product, best first.

    ``exclude[q]`` lists the rows query q may not return. Returns (rows
    int64 [Q, k], scores float32 [Q, k]) with k capped at the rows there
    are; a query left with fewer rows is padded with row -1, score -inf.
    """
    import tensorflow as tf

    k = min(k, len(embeddings))
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    step = max(1, _CHUNK_SCORES // max(1, len(embeddings)))
    items = tf.constant(embeddings, tf.float32)
    for start in range(0, len(queries) if k else 0, step):
        end = min(start + step, len(queries))
        s = tf.matmul(tf.constant(queries[start:end]), items, transpose_b=True)
        if exclude is not None:
            excl = exclude[start:end]
            users = np.repeat(np.arange(len(excl)), [len(e) for e in excl])
            items_out = np.concatenate([np.zeros(0, np.int64), *excl])
            where = np.stack([users, items_out], axis=1)
            s = tf.tensor_scatter_nd_update(
                s, where, tf.fill([len(where)], -np.inf)
            )
        # top_k is multi-threaded; np.argpartition was 10× slower at 1M.
        top = tf.math.top_k(s, k=k)
        scores[start:end] = top.values.numpy()
        rows[start:end] = np.where(
            scores[start:end] > -np.inf, top.indices.numpy(), -1
        )
    return rows, scores
