"""The retrieval SavedModel: user inputs → top-K item ids and scores.

TF Serving cannot load ScaNN's custom ops (TFRS #182, #216, #362), so this
model searches exactly with stock ops: the user tower, then the dot
product with the item embedding matrix (a variable) and
``tf.math.top_k``. Items are scored in chunks whose size shrinks as the
request batch grows, so one request never holds more than
``CHUNK_SCORES`` scores; each chunk's top-K is merged into a running
top-K, which gives what one ``top_k`` over all items would (the order
of exactly tied scores aside: ``top_k`` does not fix it either).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from easymatch.errors import DataError, EasyMatchError
from easymatch.export.embedding_table import check_item_ids
from easymatch.export.signatures import column_signatures, read_variables
from easymatch.features import FeatureSet
from easymatch.models.match_model import MatchModel

RETRIEVAL = "retrieval"
ITEM_IDS = "item_ids"
SCORES = "scores"
DEFAULT_TOP_K = 100
# Scores one request holds at once: 16M float32, 64 MB.
CHUNK_SCORES = 1 << 24


def check_top_k(top_k: int) -> int:
    if top_k <= 0:
        raise EasyMatchError(f"top_k must be at least 1, got {top_k}")
    return top_k


def chunked_top_k(
    queries: tf.Tensor,
    items: tf.Tensor | tf.Variable,
    k: int,
    chunk_scores: int = CHUNK_SCORES,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Top-k (scores float32 [B, k], rows int64 [B, k]) of queries · itemsᵀ.

    k must not exceed the item count. Chunks hold
    max(k, chunk_scores // B) items; the loop runs one chunk at a time.
    """
    num_items = tf.shape(items, out_type=tf.int64)[0]
    batch = tf.shape(queries, out_type=tf.int64)[0]
    rows = tf.maximum(
        tf.constant(k, tf.int64), chunk_scores // tf.maximum(batch, 1)
    )

    def body(start, values, indices):
        size = tf.minimum(rows, num_items - start)
        chunk = tf.slice(items, tf.stack([start, 0]), tf.stack([size, -1]))
        scores = tf.matmul(queries, chunk, transpose_b=True)
        top = tf.math.top_k(scores, k=tf.cast(tf.minimum(size, k), tf.int32))
        merged_values = tf.concat([values, top.values], axis=1)
        merged_rows = tf.concat(
            [indices, tf.cast(top.indices, tf.int64) + start], axis=1
        )
        best = tf.math.top_k(merged_values, k=k)
        return (
            start + size,
            best.values,
            tf.gather(merged_rows, best.indices, batch_dims=1),
        )

    _, values, indices = tf.while_loop(
        lambda start, values, indices: start < num_items,
        body,
        (
            tf.constant(0, tf.int64),
            tf.fill(tf.stack([batch, k]), tf.constant(-np.inf, tf.float32)),
            tf.fill(tf.stack([batch, k]), tf.constant(-1, tf.int64)),
        ),
        shape_invariants=(
            tf.TensorShape([]),
            tf.TensorShape([None, k]),
            tf.TensorShape([None, k]),
        ),
        # One chunk's scores alive at a time: that is the memory bound.
        parallel_iterations=1,
    )
    return values, indices


def id_tensor_values(ids: np.ndarray) -> np.ndarray:
    """Item ids in the id column's dtype: int64 for integers, else text."""
    ids = np.asarray(ids)
    if ids.dtype.kind in "iu":
        return ids.astype(np.int64)
    return check_item_ids(ids).astype(object)


def check_item_embeddings(ids: np.ndarray, embeddings: np.ndarray) -> None:
    """One finite embedding row per unique id, at least one item."""
    if len(ids) == 0:
        raise DataError("the item corpus is empty: nothing to retrieve")
    if embeddings.ndim != 2 or len(embeddings) != len(ids):
        raise EasyMatchError(
            f"{len(ids)} item ids for embeddings of shape {embeddings.shape}"
        )
    check_item_ids(ids)
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
    if len(bad):
        raise DataError(
            f"item {np.asarray(ids)[bad[0]]!s} (corpus row {bad[0] + 1}): "
            "its embedding is not finite"
        )


class RetrievalExport:
    """The user tower followed by exact top-K search over the items.

    Signatures as the user tower (`serving_default` on raw columns,
    `tf_example` on serialized protos); outputs `item_ids` [B, K] in the
    item id column's dtype and `scores` [B, K], best first, K =
    min(top_k, items).
    """

    def __init__(
        self,
        model: MatchModel,
        features: FeatureSet,
        dtypes: dict[str, tf.DType],
        item_ids: np.ndarray,
        item_embeddings: np.ndarray,
        top_k: int = DEFAULT_TOP_K,
    ) -> None:
        check_top_k(top_k)
        check_item_embeddings(item_ids, item_embeddings)
        k = min(top_k, len(item_ids))
        self.top_k = k
        self.module = tf.Module(name=RETRIEVAL)
        self.module.features = features
        self.module.item_embeddings = tf.Variable(
            np.asarray(item_embeddings, np.float32),
            trainable=False,
            name="item_embeddings",
        )
        self.module.item_ids = tf.Variable(
            id_tensor_values(item_ids), trainable=False, name="item_ids"
        )
        module = self.module

        def retrieve(columns: dict[str, tf.Tensor]) -> dict:
            users, _ = model.embed_users(
                features.transform(columns), training=False
            )
            scores, rows = chunked_top_k(
                tf.cast(users, tf.float32), module.item_embeddings, k
            )
            return {ITEM_IDS: tf.gather(module.item_ids, rows), SCORES: scores}

        self.signatures = column_signatures(retrieve, dtypes)
        # Variables the signatures read (the user tower's, and the items).
        self.module.read_variables = read_variables(self.signatures)

    def save(self, directory: str) -> None:
        tf.saved_model.save(self.module, directory, signatures=self.signatures)
