"""Exact item counts of the training input, for logQ correction.

With ``candidate_probability { train_counts {} }`` (the default), logQ
correction of in-batch candidates uses each item's exact share of the
training rows (``easymatch.retrieval.candidate_probability``). The counts
come from one pass over ``train_input_path`` that reads only the item id
column, as text, as the input pipeline does, and are kept in
``model_dir/item_counts.parquet`` beside the checkpoints: a resumed run,
eval and a restarted worker read that file instead of counting again, so
they use exactly the counts training started with.

File: columns ``item_id`` (text) and ``count`` (int64), one row per
distinct id, sorted by id; schema metadata records the id column
and the input it was counted from.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from easymatch.data.convert import STRING
from easymatch.data.dataset import hash_ids, make_reader
from easymatch.errors import DataError
from easymatch.features import FeatureSet
from easymatch.specs import DataSpec, RunSpecs

COUNTS_FILE = "item_counts.parquet"
_META_KEY = b"easymatch_item_counts"
logger = logging.getLogger("easymatch")


def count_items(
    data: DataSpec, feature_set: FeatureSet, column: str, input_path: str
) -> tuple[np.ndarray, np.ndarray]:
    """(distinct ids as text, their row counts) over the training input."""
    reader = make_reader(
        data,
        feature_set,
        input_path,
        training=False,
        batch_size=65536,
        columns={column: STRING},
    )
    totals: dict[bytes, int] = {}
    for batch in reader.batches():
        ids, counts = np.unique(batch[column], return_counts=True)
        for item, count in zip(ids.tolist(), counts.tolist(), strict=True):
            totals[item] = totals.get(item, 0) + count
    if not totals:
        raise DataError(
            f"{input_path}: no rows to count items in (column {column})"
        )
    ids = sorted(totals)
    return (
        np.array(ids, dtype=object),
        np.array([totals[item] for item in ids], np.int64),
    )


def write_counts(
    path: str, ids: np.ndarray, counts: np.ndarray, meta: dict
) -> None:
    """Writes atomically: a crash or a second writer never leaves half a
    file behind."""
    table = pa.table(
        {
            "item_id": pa.array(ids.tolist(), pa.binary()),
            "count": pa.array(counts, pa.int64()),
        }
    ).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})
    directory = os.path.dirname(path) or "."
    handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
    os.close(handle)
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def read_counts(path: str) -> tuple[np.ndarray, np.ndarray, dict]:
    """(ids as text, counts, metadata) of a counts file."""
    try:
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {})[_META_KEY])
        ids = np.array(table.column("item_id").to_pylist(), dtype=object)
        counts = table.column("count").to_numpy()
    except (OSError, KeyError, ValueError, pa.ArrowException) as error:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise DataError(
            f"{path}: not a readable item counts file ({reason}); delete it "
            "to count the training input again"
        ) from None
    if len(ids) == 0 or np.any(counts < 1):
        raise DataError(f"{path}: counts must be >= 1 and not empty")
    return ids, counts, meta


def load_or_count(
    specs: RunSpecs,
    feature_set: FeatureSet,
    *,
    train_input_path: str,
    model_dir: str,
) -> dict | None:
    """MatchModel's ``item_counts`` (hashed ids, counts), or None when the
    model needs none (``RetrievalSpec.counts_column``). Reads model_dir's
    counts file, or counts the training input once and writes it there."""
    column = specs.retrieval.counts_column
    if column is None:
        return None
    path = os.path.join(model_dir, COUNTS_FILE)
    if os.path.exists(path):
        ids, counts, meta = read_counts(path)
        if meta.get("column") != column:
            raise DataError(
                f"{path}: counted column {meta.get('column')!r}, but the "
                f"model's item id column is {column!r}; delete the file to "
                "count again"
            )
        if meta.get("train_input_path") != train_input_path:
            logger.warning(
                "%s: counted from %s, not the current train_input_path %s; "
                "using it as is",
                path,
                meta.get("train_input_path"),
                train_input_path,
            )
    else:
        ids, counts = count_items(
            specs.data, feature_set, column, train_input_path
        )
        os.makedirs(model_dir, exist_ok=True)
        write_counts(
            path,
            ids,
            counts,
            {"column": column, "train_input_path": train_input_path},
        )
        logger.info("counted %d items into %s", len(ids), path)
    hashed = hash_ids(tf.constant(ids.tolist(), tf.string)).numpy()
    return {"item_ids": hashed.tolist(), "counts": counts.tolist()}
