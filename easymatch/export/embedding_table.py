"""Parquet tables of ids and embeddings (predict output, ground truth).

Embedding columns are lists of numbers or ","-joined strings, id list
columns lists or ","-joined strings, as TorchEasyRec's tools accept. Ids
are compared as text: Arrow's decimal formatting of integer ids.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from easymatch.errors import DataError


def parquet_files(path: str) -> list[str]:
    """Files of a comma-separated list of files, globs or directories."""
    found: set[str] = set()
    for pattern in [p.strip() for p in path.split(",") if p.strip()]:
        if os.path.isdir(pattern):
            pattern = os.path.join(pattern, "*.parquet")
        matches = [m for m in glob.glob(pattern) if os.path.isfile(m)]
        if not matches:
            raise DataError(f"no file matches {pattern!r}")
        found.update(matches)
    if not found:
        raise DataError(f"no input path given: {path!r}")
    return sorted(found)


def read_parquet(path: str, columns: Sequence[str]) -> pa.Table:
    """The listed columns of one Parquet file."""
    try:
        have = pq.read_schema(path).names
        table = None
        if all(c in have for c in columns):
            table = pq.read_table(path, columns=list(columns))
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{path}: not a readable Parquet file: {e}") from e
    if table is None:
        missing = [c for c in columns if c not in have][0]
        raise DataError(
            f"{path}: column {missing!r} not found (columns: {', '.join(have)})"
        )
    return table


def _first_null(column: pa.ChunkedArray) -> int | None:
    if column.null_count == 0:
        return None
    return int(np.flatnonzero(column.is_null().to_numpy(False))[0])


def id_strings(column: pa.ChunkedArray, where: str, name: str) -> np.ndarray:
    """A scalar id column as a str array; nulls are an error."""
    row = _first_null(column)
    if row is not None:
        raise DataError(f"{where}: column {name!r}, row {row + 1}: null id")
    try:
        text = pc.cast(column, pa.string())
    except pa.ArrowException as e:
        raise DataError(f"{where}: column {name!r}: ids as text: {e}") from e
    return np.asarray(text.to_numpy(zero_copy_only=False), dtype=str)


def _split_text(column: pa.ChunkedArray) -> pa.ChunkedArray:
    text = pc.cast(column, pa.string())
    return pc.split_pattern(pc.if_else(pc.equal(text, ""), None, text), ",")


def embedding_matrix(
    column: pa.ChunkedArray, where: str, name: str
) -> np.ndarray:
    """A list-of-numbers or ","-joined column as float32 [rows, dim]."""
    if not pa.types.is_list(column.type) and not (
        pa.types.is_large_list(column.type)
        or pa.types.is_fixed_size_list(column.type)
    ):
        column = _split_text(column)
    row = _first_null(column)
    if row is not None:
        raise DataError(f"{where}: column {name!r}, row {row + 1}: null")
    lengths = pc.list_value_length(column).to_numpy()
    if len(lengths) == 0:
        return np.zeros((0, 0), np.float32)
    if (lengths != lengths[0]).any():
        row = int(np.flatnonzero(lengths != lengths[0])[0])
        raise DataError(
            f"{where}: column {name!r}, row {row + 1}: {lengths[row]} "
            f"values, row 1 has {lengths[0]}"
        )
    values = pc.list_flatten(column)
    try:
        flat = pc.cast(values, pa.float32()).to_numpy(zero_copy_only=False)
    except pa.ArrowException as e:
        raise DataError(f"{where}: column {name!r}: not numbers: {e}") from e
    matrix = flat.reshape(len(lengths), int(lengths[0]))
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{where}: column {name!r}, row {row + 1}: missing or "
            "non-finite value"
        )
    return matrix


def id_lists(column: pa.ChunkedArray, where: str, name: str) -> list[list[str]]:
    """A list or ","-joined id column as lists of text ids (null: [])."""
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = pc.cast(column, pa.list_(pa.string()))
    else:
        column = _split_text(column)
    lists = column.to_pylist()
    for row, ids in enumerate(lists):
        if ids and any(i is None or i == "" for i in ids):
            raise DataError(
                f"{where}: column {name!r}, row {row + 1}: empty item id"
            )
    return [ids or [] for ids in lists]


def check_item_ids(ids: np.ndarray) -> np.ndarray:
    """Item ids as text, one line each, unique: what an index row needs."""
    ids = np.asarray(ids)
    nulls = (
        np.flatnonzero([i is None for i in ids]) if ids.dtype == object else []
    )
    if len(nulls):
        raise DataError(f"item id at row {nulls[0] + 1} is null")
    text = ids.astype(str)
    bad = np.flatnonzero((text == "") | np.char.find(text, "\n") >= 0)
    if len(bad):
        raise DataError(
            f"item id at row {bad[0] + 1} is empty or spans lines: "
            f"{str(text[bad[0]])!r}"
        )
    unique, first, counts = np.unique(
        text, return_index=True, return_counts=True
    )
    if (counts > 1).any():
        dup = np.flatnonzero(counts > 1)[0]
        raise DataError(
            f"item id {str(unique[dup])!r} occurs {counts[dup]} times "
            f"(first at row {first[dup] + 1}); the index needs one row per "
            "item"
        )
    return text


def load_item_embeddings(
    path: str, id_field: str, embedding_field: str
) -> tuple[np.ndarray, np.ndarray]:
    """(ids as str [N], embeddings float32 [N, d]) of a predict output."""
    ids, embeddings = [], []
    for name in parquet_files(path):
        table = read_parquet(name, [id_field, embedding_field])
        if table.num_rows:
            ids.append(id_strings(table.column(id_field), name, id_field))
            column = table.column(embedding_field)
            embeddings.append(embedding_matrix(column, name, embedding_field))
    if not ids:
        raise DataError(f"{path}: no rows")
    dims = {e.shape[1] for e in embeddings}
    if len(dims) > 1:
        raise DataError(f"{path}: files have embeddings of sizes {dims}")
    return np.concatenate(ids), np.concatenate(embeddings)
