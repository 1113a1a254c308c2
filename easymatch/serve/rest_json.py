"""TF Serving's REST JSON: request bodies → arrays, arrays → responses.

Row format `{"instances": [...]}`: one entry per row, an object of input
name → value, or the bare value when the signature has one input.
Columnar format `{"inputs": {...}}`: input name → the batch, or the bare
batch for a one-input signature. Binary strings are `{"b64": "..."}`.
Retrieval's options may also be top-level keys: `"top_k"`, `"exact"`.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np
import tensorflow as tf

from easymatch.serve.signature import Arrays, Signature
from easymatch.serve.status import invalid

OPTION_KEYS = ("top_k", "exact")
JSON_TYPES = {str: "String", bool: "Bool", int: "Int", float: "Double"}


def parse_body(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise invalid(f"JSON Parse error: {error}") from None
    if not isinstance(parsed, dict):
        raise invalid("JSON Parse error: the body must be a JSON object")
    return parsed


def leaf(name: str, value: Any, dtype: tf.DType, where: str) -> Any:
    """One JSON value as the dtype's Python value, or INVALID_ARGUMENT."""
    if dtype == tf.string:
        if isinstance(value, str):
            return value.encode()
        if isinstance(value, dict) and set(value) == {"b64"}:
            try:
                return base64.b64decode(value["b64"], validate=True)
            except (binascii.Error, TypeError):
                raise invalid(f"{where}: input {name!r}: bad b64") from None
    elif dtype == tf.bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    elif dtype.is_floating and isinstance(value, float):
        return value
    kind = JSON_TYPES.get(type(value), type(value).__name__)
    raise invalid(
        f"{where}: input {name!r}: JSON value {json.dumps(value)[:60]} "
        f"(type {kind}) is not of expected type {dtype.name}"
    )


def to_array(name: str, value: Any, dtypes, where: str) -> np.ndarray:
    dtype = dtypes[0]

    def walk(node):
        if isinstance(node, list):
            return [walk(child) for child in node]
        return leaf(name, node, dtype, where)

    values = walk(value)
    if dtype == tf.string:
        array = np.empty(np.shape(values), dtype=object)
        array[...] = values
        return array
    try:
        return np.array(values, dtype=dtype.as_numpy_dtype)
    except (ValueError, OverflowError) as error:
        raise invalid(f"{where}: input {name!r}: {error}") from None


def request_arrays(body: dict[str, Any], signature: Signature) -> Arrays:
    if ("instances" in body) == ("inputs" in body):
        raise invalid(
            "the request must have exactly one of 'instances' (row format) "
            "or 'inputs' (columnar format)"
        )
    names = list(signature.inputs)
    columns: dict[str, Any] = {}
    if "instances" in body:
        rows = body["instances"]
        if not isinstance(rows, list) or not rows:
            raise invalid("'instances' must be a non-empty list")
        objects = all(isinstance(r, dict) and set(r) != {"b64"} for r in rows)
        if not objects and len(names) == 1:
            columns[names[0]] = rows
        elif not objects:
            raise invalid(
                "each element of 'instances' must be an object of input "
                f"name → value ({', '.join(names)})"
            )
        else:
            keys = set(rows[0])
            for index, row in enumerate(rows):
                if set(row) != keys:
                    raise invalid(
                        f"'instances' element {index} has inputs "
                        f"{sorted(row)}, element 0 has {sorted(keys)}"
                    )
            columns = {k: [row[k] for row in rows] for k in rows[0]}
        where = "'instances'"
    else:
        given = body["inputs"]
        if isinstance(given, dict) and not set(given) == {"b64"}:
            columns = dict(given)
        elif len(names) == 1:
            columns[names[0]] = given
        else:
            raise invalid(f"'inputs' must be an object of {', '.join(names)}")
        where = "'inputs'"
    for key in OPTION_KEYS:
        if key in body:
            columns[key] = body[key]
    return {
        name: to_array(name, value, signature.accepts(name), where)
        for name, value in columns.items()
    }


def json_values(array: np.ndarray) -> Any:
    if array.dtype.kind in "OSU":
        return np.vectorize(text, otypes=[object])(array).tolist()
    return array.tolist()


def text(value: bytes | str) -> Any:
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode()}


def response_body(outputs: Arrays, row_format: bool) -> dict[str, Any]:
    if not row_format:
        if len(outputs) == 1:
            return {"outputs": json_values(next(iter(outputs.values())))}
        return {"outputs": {k: json_values(v) for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": json_values(next(iter(outputs.values())))}
    columns = {k: json_values(v) for k, v in outputs.items()}
    rows = len(next(iter(columns.values())))
    return {
        "predictions": [
            {k: v[i] for k, v in columns.items()} for i in range(rows)
        ]
    }
