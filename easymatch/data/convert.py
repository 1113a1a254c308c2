"""Arrow columns → numpy arrays under the raw-column contract.

See docs/design.md: kind "string" yields an object array of ``bytes`` (null →
``b""``), kind "float" a float32 array (null → NaN; a NaN or infinity in
the data is a DataError). Every conversion is one
vectorized Arrow compute call per column; only the error path looks at rows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from easymatch.errors import DataError

STRING = "string"
FLOAT = "float"
KINDS = (STRING, FLOAT)
# Not a kind to ask for: how the reader delivers a text column that holds
# integers without nulls (TableReader.int64_columns).
INT64 = "int64"


def _is_text(t: pa.DataType) -> bool:
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
    )


def _is_number(t: pa.DataType) -> bool:
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
    )


def _first_failure(
    values: pa.Array, convert: Callable[[pa.Array], object]
) -> int:
    """Index of the first value ``convert`` rejects, found by bisection.

    Arrow reports a failed cast without its row; bisection finds the row
    with O(n) vectorized work instead of a per-row Python loop.
    """
    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(values.slice(lo, mid - lo))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
        else:
            lo = mid
    return lo


def cast_or_raise(
    values: pa.Array,
    target: pa.DataType,
    where: str,
    column: str,
    first_row: int,
    type_name: str,
) -> pa.Array:
    """Casts text to ``target``; an error names the 1-based data row.

    ``first_row`` is the 0-based index of ``values[0]`` in its file.
    """

    def convert(a: pa.Array) -> pa.Array:
        return pc.cast(a, target)

    try:
        return convert(values)
    except pa.ArrowInvalid:
        i = _first_failure(values, convert)
        text = values[i].as_py()
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        raise DataError(
            f"{where}: row {first_row + i + 1}, column {column!r}: "
            f"cannot parse {text!r} as {type_name}"
        ) from None


def _to_text(values: pa.Array, where: str, column: str) -> pa.Array:
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.dictionary_decode(), t.value_type
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return values
    if pa.types.is_large_string(t):
        return values.cast(pa.large_binary())
    if not (_is_number(t) or pa.types.is_string(t)):
        raise DataError(
            f"{where}: column {column!r} has type {t}, "
            "which cannot be read as a string"
        )
    return pc.cast(values, pa.string()).cast(pa.binary())


def _to_float(
    values: pa.Array, where: str, column: str, first_row: int
) -> pa.Array:
    t = values.type
    if pa.types.is_dictionary(t):
        values, t = values.dictionary_decode(), t.value_type
    if _is_number(t):
        # Unsafe: int64 ids beyond 2**24 lose precision in float32 by design.
        return _finite(
            pc.cast(values, pa.float32(), safe=False), where, column, first_row
        )
    if not _is_text(t):
        raise DataError(
            f"{where}: column {column!r} has type {t}, "
            "which cannot be read as a float"
        )
    if not pa.types.is_string(t):
        values = values.cast(pa.string())
    # An empty cell is a missing value, as a null is, not a parse error.
    values = pc.if_else(pc.equal(values, ""), None, values)
    parsed = cast_or_raise(
        values, pa.float64(), where, column, first_row, "float"
    )
    return _finite(
        pc.cast(parsed, pa.float32(), safe=False), where, column, first_row
    )


def _finite(
    values: pa.Array, where: str, column: str, first_row: int
) -> pa.Array:
    """A NaN or infinity in the data is an error; a null stays missing.

    TorchEasyRec fills nulls with the feature's default and passes NaN on
    into the model, where it poisons the loss; easymatch stops at it.
    """
    bad = pc.fill_null(pc.invert(pc.is_finite(values)), False)
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise DataError(
            f"{where}: row {first_row + i + 1}, column {column!r}: "
            f"{values[i].as_py()} is not a finite number"
        )
    return values


def to_numpy(
    values: pa.Array | pa.ChunkedArray,
    kind: str,
    where: str,
    column: str,
    first_row: int,
) -> np.ndarray:
    """Converts one column of one chunk; ``where`` names the file."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if kind == INT64:
        return pc.cast(values, pa.int64()).to_numpy()
    if kind == STRING:
        text = pc.fill_null(_to_text(values, where, column), b"")
        return text.to_numpy(zero_copy_only=False)
    floats = _to_float(values, where, column, first_row)
    return pc.fill_null(floats, np.float32("nan")).to_numpy(
        zero_copy_only=False
    )
