"""MovieLens in RecBole atomic format → leave-last-out retrieval data.

Input: ``<name>.inter`` (user_id, item_id, timestamp; other columns such
as rating are ignored: every rating is an implicit positive),
``<name>.user`` (user_id, age, gender, occupation, zip_code) and
``<name>.item`` (item_id, release_year, class: space-separated genres).
Atomic files are tab-separated with a ``name:type`` header.

Each user's last interaction by (timestamp, item_id) is held out as test;
users with a single interaction keep it in train. Outputs in output_dir:

- ``train.parquet``: one row per training interaction (user and item
  features, timestamp, label 1.0), rows in a seeded random order;
- ``test.parquet``: the held-out interactions, same columns;
- ``test_gt.parquet``: per test user the user features, ``gt_items`` (the
  held-out item) and ``seen_items`` (their training items) for
  tools/hitrate.py;
- ``item.parquet``: every item of the .item file: item_id, release_year
  (0 when not a year), genres ("|"-joined).
"""

from __future__ import annotations

import glob
import os

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from easymatch.errors import DataError

USER_FIELDS = ("user_id", "age", "gender", "occupation", "zip_code")
ITEM_FIELDS = ("item_id", "release_year", "genres")
GENRE_DELIM = "|"


def read_atomic(path: str, fields: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named columns of an atomic file as str arrays."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    names = [h.split(":")[0] for h in header]
    for field in fields:
        if field not in names:
            raise DataError(
                f"{path}: line 1: field {field!r} missing "
                f"(fields: {', '.join(names)})"
            )
    bad: list[tuple[int, int]] = []

    def invalid(row) -> str:
        bad.append((row.number, row.actual_columns))
        return "error"

    try:
        table = pacsv.read_csv(
            path,
            # Single-threaded, so that a bad row's line number is known.
            read_options=pacsv.ReadOptions(
                use_threads=False, skip_rows=1, column_names=names
            ),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, invalid_row_handler=invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                include_columns=list(fields),
                strings_can_be_null=False,
            ),
        )
    except (OSError, pa.ArrowException) as e:
        if bad:
            line, got = bad[0]
            raise DataError(
                f"{path}: line {line}: expected {len(names)} tab-separated "
                f"fields, got {got}"
            ) from e
        raise DataError(f"{path}: {str(e).splitlines()[0]}") from e
    return {
        f: np.asarray(table.column(f).to_numpy(False), dtype=str)
        for f in fields
    }


def _find(input_dir: str, suffix: str) -> str:
    found = sorted(glob.glob(os.path.join(input_dir, f"*{suffix}")))
    if len(found) != 1:
        raise DataError(
            f"{input_dir}: expected one *{suffix} file, found {len(found)}"
        )
    return found[0]


def _is_int(values: np.ndarray) -> np.ndarray:
    return np.char.isdigit(values) & (np.char.str_len(values) < 19)


def _timestamps(path: str, values: np.ndarray) -> np.ndarray:
    try:
        return values.astype(np.float64)
    except ValueError:
        for row, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise DataError(
                    f"{path}: line {row + 2}: timestamp {str(value)!r} "
                    "is not a number"
                ) from None
        raise


def _lookup(
    keys: np.ndarray, table_keys: np.ndarray, path: str, what: str
) -> np.ndarray:
    """Row of each key in a feature table; unknown keys are an error."""
    if len(table_keys) == 0:
        raise DataError(f"{path}: no rows")
    order = np.argsort(table_keys, kind="stable")
    pos = np.searchsorted(table_keys, keys, sorter=order)
    pos = np.minimum(pos, len(order) - 1)
    rows = order[pos]
    missing = table_keys[rows] != keys
    if missing.any():
        raise DataError(f"{path}: no row for {what} {str(keys[missing][0])!r}")
    return rows


def _check_unique(path: str, keys: np.ndarray) -> None:
    unique, counts = np.unique(keys, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path}: id {str(unique[counts > 1][0])!r} repeats")


def prepare(input_dir: str, output_dir: str, seed: int = 0) -> dict[str, int]:
    """Writes the four files; returns counts for the summary line."""
    inter_path = _find(input_dir, ".inter")
    user_path, item_path = _find(input_dir, ".user"), _find(input_dir, ".item")
    inter = read_atomic(inter_path, ("user_id", "item_id", "timestamp"))
    users = read_atomic(user_path, USER_FIELDS)
    raw_items = read_atomic(item_path, ("item_id", "release_year", "class"))
    if len(inter["user_id"]) == 0:
        raise DataError(f"{inter_path}: no interactions")
    _check_unique(user_path, users["user_id"])
    _check_unique(item_path, raw_items["item_id"])
    year = raw_items["release_year"]
    items = {
        "item_id": raw_items["item_id"],
        "release_year": np.where(_is_int(year), year, "0"),
        "genres": np.array(
            [GENRE_DELIM.join(g.split()) for g in raw_items["class"]], str
        ),
    }
    # Ids and ages are int64 when every value in their table is an integer.
    integer = {
        "user_id": _is_int(users["user_id"]).all(),
        "age": _is_int(users["age"]).all(),
        "item_id": _is_int(items["item_id"]).all(),
    }

    def typed(name: str, values: np.ndarray) -> pa.Array:
        if integer.get(name, False):
            return pa.array(values.astype(np.int64))
        return pa.array(values, pa.string())

    ts = _timestamps(inter_path, inter["timestamp"])
    user, item = inter["user_id"], inter["item_id"]
    u_rows = _lookup(user, users["user_id"], user_path, "user_id")
    i_rows = _lookup(item, items["item_id"], item_path, "item_id")
    item_key = (
        item.astype(np.int64)
        if integer["item_id"]
        else np.unique(item, return_inverse=True)[1]
    )
    # By user, then (timestamp, item_id): a user's last row is their test.
    order = np.lexsort((item_key, ts, user))
    last = np.append(user[order][1:] != user[order][:-1], True)
    first = np.insert(last[:-1], 0, True)
    test_rows = order[last & ~first]
    is_test = np.zeros(len(user), bool)
    is_test[test_rows] = True

    def user_columns(rows: np.ndarray) -> dict[str, pa.Array]:
        return {f: typed(f, users[f][u_rows[rows]]) for f in USER_FIELDS}

    def item_columns(rows: np.ndarray) -> dict[str, pa.Array]:
        return {
            "item_id": typed("item_id", items["item_id"][rows]),
            "release_year": pa.array(items["release_year"][rows].astype(int)),
            "genres": pa.array(items["genres"][rows], pa.string()),
        }

    def interactions(rows: np.ndarray) -> pa.Table:
        return pa.table(
            {
                **user_columns(rows),
                **item_columns(i_rows[rows]),
                "timestamp": pa.array(ts[rows].astype(np.int64)),
                "label": pa.array(np.ones(len(rows), np.float32)),
            }
        )

    seen: dict[str, list[str]] = {}
    for r in order[~is_test[order]]:
        seen.setdefault(user[r], []).append(item[r])
    id_type = pa.int64() if integer["item_id"] else pa.string()
    gt = pa.table(
        {
            **user_columns(test_rows),
            "gt_items": pa.array(
                [[i] for i in item[test_rows].tolist()], pa.list_(pa.string())
            ).cast(pa.list_(id_type)),
            "seen_items": pa.array(
                [seen[u] for u in user[test_rows]], pa.list_(pa.string())
            ).cast(pa.list_(id_type)),
        }
    )
    train_rows = np.random.default_rng(seed).permutation(
        np.flatnonzero(~is_test)
    )
    os.makedirs(output_dir, exist_ok=True)
    outputs = {
        "train": interactions(train_rows),
        "test": interactions(test_rows),
        "test_gt": gt,
        "item": pa.table(item_columns(np.arange(len(items["item_id"])))),
    }
    for name, table in outputs.items():
        # Several row groups, so that the shuffling reader can permute them.
        path = os.path.join(output_dir, f"{name}.parquet")
        pq.write_table(table, path, row_group_size=8192)
    train_items = set(item[train_rows].tolist())
    return {
        "users": len(users["user_id"]),
        "items": len(items["item_id"]),
        "train_rows": len(train_rows),
        "test_users": len(test_rows),
        "test_items_not_in_train": sum(
            i not in train_items for i in item[test_rows].tolist()
        ),
    }
