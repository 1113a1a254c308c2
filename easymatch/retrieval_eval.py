"""Full-corpus retrieval evaluation of an export (tools/hitrate.py).

Users of a ground-truth table are embedded with the exported user tower
and retrieve from the exported item index, by ScaNN and exactly; the
metrics are those of easymatch/hitrate.py. Users with no ground truth are
skipped; items a user already saw (minus their ground truth) are
excluded from every method's lists when the table gives them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easymatch.errors import DataError, EasyMatchError
from easymatch.export.embedding_table import (
    id_lists,
    id_strings,
    parquet_files,
    read_parquet,
)
from easymatch.export.scann_index import ItemIndex
from easymatch.hitrate import (
    drop_excluded,
    hit_metrics,
    overlap,
    popularity_top_k,
)

logger = logging.getLogger(__name__)
USER_EMBEDDING = "user_tower_emb"


@dataclass
class GroundTruth:
    """Per user: tower inputs, relevant index rows and |G_u|, excluded rows."""

    inputs: dict[str, np.ndarray]
    gt_rows: list[set[int]]
    gt_sizes: np.ndarray
    exclude: list[np.ndarray]
    gt_not_in_index: int


def load_tower(tower_dir: str) -> tuple[Any, dict[str, Any]]:
    """A tower SavedModel's serving_default and its input specs by name."""
    import tensorflow as tf

    try:
        fn = tf.saved_model.load(tower_dir).signatures["serving_default"]
    except (OSError, KeyError, ValueError) as e:
        raise EasyMatchError(f"{tower_dir}: no tower SavedModel: {e}") from e
    return fn, dict(fn.structured_input_signature[1])


def _tower_input(column: pa.ChunkedArray, dtype, where: str, name: str):
    if dtype.is_floating:
        values = pc.fill_null(pc.cast(column, pa.float64()), float("nan"))
        return values.to_numpy().astype(dtype.as_numpy_dtype)
    if dtype.is_integer:
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(False))[0])
            raise DataError(f"{where}: column {name!r}, row {row + 1}: null")
        return (
            pc.cast(column, pa.int64()).to_numpy().astype(dtype.as_numpy_dtype)
        )
    text = pc.fill_null(pc.cast(column, pa.string()), "")
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)


def read_ground_truth(
    path: str,
    specs: dict[str, Any],
    gt_field: str,
    seen_field: str | None,
    item_rows: dict[str, int],
) -> GroundTruth:
    """Reads GT files; users with no ground truth are dropped (warned)."""
    fields = list(specs) + [gt_field] + ([seen_field] if seen_field else [])
    parts: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    gt: list[list[str]] = []
    seen: list[list[str]] = []
    for name in parquet_files(path):
        table = read_parquet(name, list(dict.fromkeys(fields)))
        for field, spec in specs.items():
            column = table.column(field)
            parts[field].append(_tower_input(column, spec.dtype, name, field))
        gt += id_lists(table.column(gt_field), name, gt_field)
        if seen_field:
            seen += id_lists(table.column(seen_field), name, seen_field)
    keep = np.array([bool(g) for g in gt], dtype=bool)
    if not keep.all():
        logger.warning("%d users have no ground truth, skipped", (~keep).sum())
    if not keep.any():
        raise DataError(f"{path}: no user has ground-truth items")
    gt_sets = [set(g) for g, k in zip(gt, keep, strict=True) if k]
    gt_rows = [{item_rows[i] for i in g if i in item_rows} for g in gt_sets]
    exclude = [np.zeros(0, np.int64)] * len(gt_sets)
    if seen_field:
        seen_kept = [s for s, k in zip(seen, keep, strict=True) if k]
        exclude = [
            np.array(
                sorted({item_rows[i] for i in s if i in item_rows} - g),
                dtype=np.int64,
            )
            for s, g in zip(seen_kept, gt_rows, strict=True)
        ]
    return GroundTruth(
        inputs={k: np.concatenate(v)[keep] for k, v in parts.items()},
        gt_rows=gt_rows,
        gt_sizes=np.array([len(g) for g in gt_sets]),
        exclude=exclude,
        gt_not_in_index=sum(len(g) for g in gt_sets)
        - sum(len(r) for r in gt_rows),
    )


def embed(
    fn: Any, inputs: dict[str, np.ndarray], output: str, batch_size: int
) -> np.ndarray:
    """Runs a tower signature over the inputs in batches; float32 [U, d]."""
    import tensorflow as tf

    num = len(next(iter(inputs.values())))
    out = []
    for start in range(0, num, batch_size):
        batch = {
            k: tf.constant(v[start : start + batch_size])
            for k, v in inputs.items()
        }
        result = fn(**batch)
        if output not in result:
            raise EasyMatchError(
                f"tower returns {sorted(result)}, not {output!r}"
            )
        out.append(result[output].numpy())
    return np.concatenate(out).astype(np.float32)


def scann_top_k(
    index: ItemIndex,
    queries: np.ndarray,
    k: int,
    exclude: Sequence[np.ndarray],
    batch_size: int,
) -> tuple[np.ndarray, float]:
    """ScaNN top-k rows with exclusions, and the seconds spent searching.

    ScaNN cannot mask rows, so each batch over-fetches by its longest
    exclude list and drops the excluded rows afterwards.
    """
    results, seconds = [], 0.0
    for start in range(0, len(queries), batch_size):
        excl = exclude[start : start + batch_size]
        fetch = k + max(len(e) for e in excl)
        began = time.perf_counter()
        rows, _ = index.search_rows(queries[start : start + batch_size], fetch)
        seconds += time.perf_counter() - began
        results.append(drop_excluded(rows, excl, k))
    return np.concatenate(results), seconds


def train_counts(
    path: str, field: str, item_rows: dict[str, int]
) -> np.ndarray:
    """Interactions per index row in the training files (popularity)."""
    counts = np.zeros(len(item_rows), dtype=np.int64)
    for name in parquet_files(path):
        ids = id_strings(read_parquet(name, [field]).column(field), name, field)
        unique, n = np.unique(ids, return_counts=True)
        for item, c in zip(unique, n, strict=True):
            if item in item_rows:
                counts[item_rows[item]] += c
    return counts


def evaluate(
    export_dir: str,
    gt_path: str,
    ks: Sequence[int],
    gt_field: str = "gt_items",
    seen_field: str | None = "seen_items",
    exact: bool = False,
    exact_sample: int = 1000,
    popularity_path: str | None = None,
    popularity_field: str = "item_id",
    batch_size: int = 1024,
) -> dict[str, Any]:
    """The hitrate report of tools/hitrate.py as a dict."""
    index = ItemIndex.load(os.path.join(export_dir, "item_index"))
    item_rows = {item: r for r, item in enumerate(index.ids)}
    fn, specs = load_tower(os.path.join(export_dir, "user"))
    gt = read_ground_truth(gt_path, specs, gt_field, seen_field, item_rows)
    users = len(gt.gt_rows)
    queries = embed(fn, gt.inputs, USER_EMBEDDING, batch_size)
    k = max(ks)
    found, scann_seconds = scann_top_k(
        index, queries, k, gt.exclude, batch_size
    )
    sample = np.arange(users)
    if not exact and users > exact_sample:
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(users, exact_sample, replace=False))
    began = time.perf_counter()
    exact_rows, _ = index.exact_search_rows(
        queries[sample], k, [gt.exclude[u] for u in sample]
    )
    exact_seconds = time.perf_counter() - began

    def metrics(rows: np.ndarray) -> dict[str, float]:
        return hit_metrics(rows, gt.gt_rows, gt.gt_sizes, ks)

    report: dict[str, Any] = {
        "users": users,
        "items": len(index.ids),
        "gt_items": int(gt.gt_sizes.sum()),
        "gt_items_not_in_index": gt.gt_not_in_index,
        "seen_excluded": int(sum(len(e) for e in gt.exclude)),
        "index": index.params,
        # What the index was tuned to and measured at when it was built.
        "index_tuning": {
            key: value
            for key, value in index.info.get("tuning", {}).items()
            if key != "trials"
        },
        "scann": metrics(found),
        "scann_vs_exact": overlap(found[sample], exact_rows, ks),
        "exact_users": len(sample),
        "scann_qps": round(users / max(scann_seconds, 1e-9), 1),
        "exact_qps": round(len(sample) / max(exact_seconds, 1e-9), 1),
    }
    if exact:
        report["exact"] = metrics(exact_rows)
    if popularity_path:
        counts = train_counts(popularity_path, popularity_field, item_rows)
        report["popularity"] = metrics(popularity_top_k(counts, gt.exclude, k))
    return report
