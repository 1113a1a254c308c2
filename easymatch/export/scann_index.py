"""The item index shipped beside the towers: ScaNN searcher, ids, params.

``ItemIndex.save(d)`` writes ``d/scann/`` (the serialized searcher, asset
paths relative so ``d`` can move), ``d/item_ids.txt`` (row r ↔ line r, as
TorchEasyRec's id_mapping), ``d/item_embeddings.npy`` (float32, as
indexed, for exact search) and ``d/index.json`` (similarity, sizes and
the ScaNN parameters used). COSINE indexes unit-length items and
normalizes queries, so dot product serves both similarities.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from easymatch.errors import EasyMatchError
from easymatch.export.brute_force import exact_search, normalize
from easymatch.export.embedding_table import check_item_ids

SIMILARITIES = ("INNER_PRODUCT", "COSINE")
SCANN_DIR = "scann"
IDS_FILE = "item_ids.txt"
EMBEDDINGS_FILE = "item_embeddings.npy"
PARAMS_FILE = "index.json"
# Below this size brute force is exact and cheap (< 20k dot products per
# query), and √N leaves would hold too few points to train partitions and
# codebooks on.
BRUTE_FORCE_MAX_ITEMS = 20_000


def tree_params(num_items: int, dim: int) -> dict[str, Any]:
    """Tree + asymmetric hashing + exact reordering, sized from the corpus.

    round(√N) leaves balance centroid scoring against leaf scanning;
    searching 5% of them (at least 20) and re-scoring 1000 candidates
    exactly gave recall@100 vs exact ≥ 0.99 on clustered 1M × 64 data
    (docs/retrieval_eval.md). Two dimensions per AH block with an
    anisotropic threshold of 0.2 is ScaNN's recommended dot-product setup.
    """
    leaves = max(1, round(math.sqrt(num_items)))
    return {
        "algorithm": "tree_ah",
        "num_leaves": leaves,
        "num_leaves_to_search": min(leaves, max(20, math.ceil(leaves / 20))),
        # ≥ 100 points per leaf for k-means, ScaNN's 100k sample otherwise.
        "training_sample_size": min(num_items, max(100_000, 100 * leaves)),
        "dims_per_block": 1 if dim == 1 else 2,
        "anisotropic_quantization_threshold": 0.2,
        "reorder": 1000,
    }


def default_params(num_items: int, dim: int) -> dict[str, Any]:
    """Brute force below BRUTE_FORCE_MAX_ITEMS items, else ``tree_params``."""
    if num_items < BRUTE_FORCE_MAX_ITEMS:
        return {"algorithm": "brute_force"}
    return tree_params(num_items, dim)


def _complete(params: dict[str, Any], num_items: int, dim: int) -> dict:
    """Given params over their algorithm's defaults; unknown keys fail."""
    algorithm = params.get("algorithm", "tree_ah")
    defaults = {
        "brute_force": {"algorithm": "brute_force"},
        "tree_ah": tree_params(num_items, dim),
    }.get(algorithm)
    if defaults is None:
        raise EasyMatchError(
            f"index params: algorithm {algorithm!r} is not brute_force or "
            "tree_ah"
        )
    if unknown := sorted(set(params) - set(defaults)):
        raise EasyMatchError(f"index params: {unknown} not for {algorithm}")
    return {**defaults, **params}


class ItemIndex:
    """A ScaNN searcher over item embeddings, with the item id per row."""

    def __init__(
        self,
        searcher: Any,
        ids: np.ndarray,
        embeddings: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        self.searcher = searcher
        self.ids = ids
        self.embeddings = embeddings
        self.info = info
        self.params: dict[str, Any] = info["params"]

    def prepare_queries(self, queries: np.ndarray) -> np.ndarray:
        """float32 [Q, dim], unit length for COSINE; the shape is checked."""
        q = np.asarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.embeddings.shape[1]:
            raise EasyMatchError(
                f"queries have shape {q.shape}, the index expects "
                f"[Q, {self.embeddings.shape[1]}]"
            )
        return normalize(q) if self.info["similarity"] == "COSINE" else q

    def search_rows(
        self, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """ScaNN top-k as (rows int64 [Q, k], scores float32 [Q, k]).

        k is capped at the index size; where ScaNN finds fewer than k items
        (the searched leaves hold fewer), rows are -1 and scores -inf.
        """
        q = self.prepare_queries(queries)
        k = min(k, len(self.ids))
        if len(q) == 0 or k == 0:
            return np.zeros((len(q), k), np.int64), np.zeros(
                (len(q), k), np.float32
            )
        # The tuned leaves and reorder (index.json) are search arguments:
        # the serialized searcher keeps the ones it was built with.
        rows, scores = self.searcher.search_batched_parallel(
            q,
            final_num_neighbors=k,
            pre_reorder_num_neighbors=max(k, self.params.get("reorder", k)),
            leaves_to_search=self.params.get("num_leaves_to_search"),
        )
        missing = np.isnan(scores)
        rows = np.where(missing, -1, rows.astype(np.int64))
        return rows, np.where(missing, -np.inf, scores).astype(np.float32)

    def search(
        self, queries: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """ScaNN top-k as (ids [Q, k], scores [Q, k]); padding ids are ""."""
        rows, scores = self.search_rows(queries, k)
        return self.ids_of(rows), scores

    def exact_search_rows(
        self,
        queries: np.ndarray,
        k: int,
        exclude: list[np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``exact_search`` over the indexed embeddings."""
        return exact_search(
            self.embeddings, self.prepare_queries(queries), k, exclude
        )

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """Item ids of index rows; row -1 becomes ""."""
        ids = self.ids[np.maximum(rows, 0)]
        ids[rows < 0] = ""
        return ids

    def save(self, directory: str) -> None:
        scann_dir = os.path.join(directory, SCANN_DIR)
        os.makedirs(scann_dir, exist_ok=True)
        self.searcher.serialize(scann_dir, relative_path=True)
        with open(os.path.join(directory, IDS_FILE), "w") as f:
            f.writelines(f"{i}\n" for i in self.ids)
        np.save(os.path.join(directory, EMBEDDINGS_FILE), self.embeddings)
        with open(os.path.join(directory, PARAMS_FILE), "w") as f:
            json.dump(self.info, f, indent=2)
            f.write("\n")

    @classmethod
    def load(cls, directory: str) -> ItemIndex:
        from scann.scann_ops.py import scann_ops_pybind

        for name in (SCANN_DIR, IDS_FILE, EMBEDDINGS_FILE, PARAMS_FILE):
            if not os.path.exists(os.path.join(directory, name)):
                raise EasyMatchError(
                    f"{directory}: not an item index ({name} missing)"
                )
        with open(os.path.join(directory, PARAMS_FILE)) as f:
            info = json.load(f)
        with open(os.path.join(directory, IDS_FILE)) as f:
            ids = np.array(f.read().splitlines(), dtype=str)
        path = os.path.join(directory, EMBEDDINGS_FILE)
        embeddings = np.load(path, mmap_mode="r")
        if not len(ids) == len(embeddings) == info["num_items"]:
            raise EasyMatchError(
                f"{directory}: {len(ids)} ids, {len(embeddings)} embeddings, "
                f"{PARAMS_FILE} says {info['num_items']} items"
            )
        searcher = scann_ops_pybind.load_searcher(
            os.path.join(directory, SCANN_DIR)
        )
        return cls(searcher, ids, embeddings, info)


def build_index(
    embeddings: np.ndarray,
    ids: np.ndarray,
    similarity: str,
    params: dict[str, Any] | None = None,
) -> ItemIndex:
    """Builds the index; ``params`` default to ``default_params``.

    Given ``params`` are laid over their algorithm's defaults
    (``algorithm``: brute_force, or tree_ah when not given).
    """
    from scann.scann_ops.py import scann_ops_pybind

    if similarity not in SIMILARITIES:
        raise EasyMatchError(
            f"similarity must be one of {SIMILARITIES}, got {similarity!r}"
        )
    db = np.ascontiguousarray(embeddings, dtype=np.float32)
    if db.ndim != 2 or 0 in db.shape:
        raise EasyMatchError(f"embeddings must be [N>0, d>0], got {db.shape}")
    if len(ids) != len(db):
        raise EasyMatchError(f"{len(ids)} ids for {len(db)} embeddings")
    bad = np.flatnonzero(~np.isfinite(db).all(axis=1))
    if len(bad):
        raise EasyMatchError(f"embedding at row {bad[0] + 1} is not finite")
    text_ids = check_item_ids(ids)
    num_items, dim = db.shape
    params = _complete(
        default_params(num_items, dim) if params is None else params,
        num_items,
        dim,
    )
    if similarity == "COSINE":
        db = normalize(db)
    builder = scann_ops_pybind.builder(db, 10, "dot_product")
    if params["algorithm"] == "brute_force":
        builder = builder.score_brute_force()
    else:
        builder = (
            builder.tree(
                params["num_leaves"],
                params["num_leaves_to_search"],
                training_sample_size=params["training_sample_size"],
            )
            .score_ah(
                params["dims_per_block"],
                anisotropic_quantization_threshold=params[
                    "anisotropic_quantization_threshold"
                ],
            )
            .reorder(params["reorder"])
        )
    info = {
        "similarity": similarity,
        "distance_measure": "dot_product",
        "num_items": num_items,
        "dim": dim,
        "params": params,
    }
    return ItemIndex(builder.build(), text_ids, db, info)
