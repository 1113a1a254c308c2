"""Id → row lookups shared by the item and edge tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easymatch.errors import DataError

# Integer ids below DENSE_FACTOR * rows + DENSE_SLACK get a direct row
# array (4 bytes per possible id): one memory access per lookup instead of
# a binary search over a table far larger than the CPU cache.
DENSE_FACTOR = 4
DENSE_SLACK = 1 << 20


def text_keys(values: pa.Array) -> np.ndarray:
    """UTF-8 ids as fixed-width bytes, which sort and search natively."""
    text = values.cast(pa.binary()).to_numpy(zero_copy_only=False)
    return np.asarray(text).astype(np.bytes_)


def sorted_unique(keys: np.ndarray) -> np.ndarray:
    # np.sort + a diff beats np.unique's hashing on millions of int64.
    keys = np.sort(keys)
    if len(keys) == 0:
        return keys
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])]


def first_repeat(keys: np.ndarray) -> int | None:
    """The first row whose id equals an earlier row's, if any."""
    ordered = np.sort(keys)
    if not np.any(ordered[1:] == ordered[:-1]):
        return None
    order = np.argsort(keys, kind="stable")
    same = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    return int(order[same + 1].min())


class IdIndex:
    """The row of each id: a direct array for compact integer ids, else
    a binary search over the sorted ids. Ids are assumed unique."""

    def __init__(self, keys: np.ndarray, integer: bool) -> None:
        self.integer = integer
        self.size = len(keys)
        self._dense: np.ndarray | None = None
        rows = np.arange(len(keys))
        if integer and len(keys) and keys.min() >= 0:
            top = int(keys.max())
            if top < DENSE_FACTOR * len(keys) + DENSE_SLACK:
                self._dense = np.full(top + 1, -1, dtype=np.int32)
                self._dense[keys] = rows
                return
        self._order = np.argsort(keys)
        self._sorted = keys[self._order]

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of each key (int64), -1 where the id is absent."""
        found = np.full(len(keys), -1, dtype=np.int64)
        if self._dense is not None:
            inside = np.flatnonzero((keys >= 0) & (keys < len(self._dense)))
            found[inside] = self._dense[keys[inside]]
            return found
        if self.size == 0:
            return found
        # Searching keys in sorted order walks the table once, cache-warm.
        by_key = np.argsort(keys)
        at = np.searchsorted(self._sorted, keys[by_key])
        at = np.minimum(at, self.size - 1)
        hit = self._sorted[at] == keys[by_key]
        found[by_key[hit]] = self._order[at[hit]]
        return found

    def lookup(self, values: np.ndarray, column: str) -> np.ndarray:
        """Rows of a raw batch column: text ids (bytes), or integers."""
        values = np.asarray(values)
        if values.dtype.kind in "iu":
            if self.integer:
                return self.rows(values.astype(np.int64))
            values = values.astype(str)
        text = pa.array(values.tolist(), pa.binary()).cast(pa.utf8())
        if not self.integer:
            return self.rows(text_keys(text))
        # A null id is "" in raw columns (docs/design.md): it matches no row.
        empty = pc.equal(text, "")
        try:
            ints = pc.cast(pc.if_else(empty, "0", text), pa.int64())
        except pa.ArrowInvalid:
            raise DataError(
                f"column {column!r}: ids must be integers, as the sampler "
                f"tables declare; got {_first_non_int(text)!r}"
            ) from None
        rows = self.rows(ints.to_numpy())
        rows[empty.to_numpy(zero_copy_only=False)] = -1
        return rows


def _first_non_int(text: pa.Array) -> str | None:
    # Error path only: per-value casts agree with the vectorized one.
    for value in text.to_pylist():
        try:
            pc.cast(pa.array([value], pa.utf8()), pa.int64())
        except pa.ArrowInvalid:
            return value
    return None
