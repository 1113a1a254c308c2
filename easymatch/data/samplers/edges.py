"""User and edge tables: ``id weight`` and ``userid itemid weight``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from easymatch.data.samplers.ids import IdIndex, sorted_unique
from easymatch.data.samplers.tables import (
    INT_TYPES,
    ItemTable,
    check_weights,
    read_table,
)

USER_COLUMNS = ("id:int64", "weight:float")
EDGE_COLUMNS = ("userid:int64", "itemid:int64", "weight:float")


def check_user_table(path: str, delimiter: str) -> None:
    """User ids play no part in sampling; the file must still be sound."""
    table = read_table(path, USER_COLUMNS, delimiter)
    table.keys(0, table.types[0] in INT_TYPES, "id")
    check_weights(table, 1)


@dataclass
class EdgeTable:
    """Edges grouped by user, each user's items in file order."""

    users: IdIndex
    starts: np.ndarray
    counts: np.ndarray
    items: np.ndarray


def read_edge_table(
    path: str, delimiter: str, items: ItemTable, require_items: bool
) -> EdgeTable:
    """Reads an edge table; item ids resolve to item-table rows.

    With ``require_items`` an item missing from the item table is an
    error (hard negatives need its attrs); otherwise the edge is dropped.
    """
    table = read_table(path, EDGE_COLUMNS, delimiter)
    check_weights(table, 2)
    user_integer = table.types[0] in INT_TYPES
    users = table.keys(0, user_integer, "userid")
    rows = items.index.rows(table.keys(1, items.index.integer, "itemid"))
    missing = np.flatnonzero(rows < 0)
    if require_items and len(missing):
        text = table.columns[1][missing[0]].as_py()
        raise table.fail(
            int(missing[0]),
            f"itemid {text!r} is not in the item table {items.path}",
        )
    kept = rows >= 0
    users, rows = users[kept], rows[kept]
    unique = sorted_unique(users)
    index = IdIndex(unique, user_integer)
    user_of = index.rows(users)
    # Sorting (user, line) keys groups edges by user in file order; np.sort
    # is far faster than a stable argsort on millions of rows.
    order = np.sort(user_of * len(users) + np.arange(len(users)))
    order %= max(len(users), 1)
    counts = np.bincount(user_of, minlength=len(unique))
    starts = np.cumsum(counts) - counts
    return EdgeTable(index, starts, counts, rows[order])
