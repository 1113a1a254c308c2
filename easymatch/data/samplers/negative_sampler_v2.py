"""NegativeSamplerV2: items without a positive edge to the row's user."""

from __future__ import annotations

import math

import numpy as np

from easymatch.data.samplers.edges import EdgeTable
from easymatch.data.samplers.negative_sampler import Draw, Sampler, contains
from easymatch.data.samplers.tables import ItemTable
from easymatch.errors import DataError


class NegativeSamplerV2(Sampler):
    """Per (user, positive item) row, weighted items the user has no edge to.

    As in TorchEasyRec, row r gets ceil(N/B) negatives, rows are
    concatenated in order and the first N kept (SPEC §6), so only the first
    ceil(N / ceil(N/B)) rows condition the draw. The row's own positive is
    excluded too, even when the edge table lacks that pair. The items come
    by the weight column as in NegativeSampler (TorchEasyRec's GraphLearn
    strategy is uniform here; SPEC §3.8 says "as above").
    """

    def __init__(
        self,
        items: ItemTable,
        num_sample: int,
        item_id_field: str,
        user_id_field: str,
        pos_edges: EdgeTable,
        pos_edge_path: str,
        seed: int = 0,
    ) -> None:
        super().__init__(items, num_sample, item_id_field, seed)
        self.user_id_field = user_id_field
        self.input_columns = [item_id_field, user_id_field]
        self.pos_edges = pos_edges
        self.pos_edge_path = pos_edge_path
        users = np.repeat(np.arange(len(pos_edges.counts)), pos_edges.counts)
        # One sorted int64 key per (user, item) pair: membership is a search.
        self._pairs = np.sort(users * len(items) + pos_edges.items)

    def draw(self, batch: dict[str, np.ndarray], step: int = 0) -> Draw:
        users = self.pos_edges.users.lookup(
            batch[self.user_id_field], self.user_id_field
        )
        positives = self.items.index.lookup(
            batch[self.item_id_field], self.item_id_field
        )
        rng = self.rng(step, users, positives)
        if len(users) == 0:
            # No row to condition on: plain weighted draws.
            return Draw(self.alias.draw(rng, self.num_sample))
        row_of = np.arange(self.num_sample) // math.ceil(
            self.num_sample / len(users)
        )
        user_of, positive_of = users[row_of], positives[row_of]
        n_items = len(self.items)

        def rejected(slots: np.ndarray, rows: np.ndarray) -> np.ndarray:
            # An absent user (-1) gives negative keys, which never match.
            keys = user_of[slots] * n_items + rows
            return contains(self._pairs, keys) | (rows == positive_of[slots])

        rows, todo = self.draw_excluding(rng, self.num_sample, rejected)
        for row in np.unique(row_of[todo]):
            slots = todo[row_of[todo] == row]
            excluded = self._excluded(users[row], positives[row])
            exact = self.draw_exact(rng, len(slots), excluded)
            if exact is None:
                user = np.asarray(batch[self.user_id_field])[row]
                raise DataError(
                    f"{self.pos_edge_path}: the positives of user {user!r} "
                    f"hold all the sampling weight of {self.items.path}; "
                    "no negative can be drawn"
                )
            rows[slots] = exact
        return Draw(rows)

    def _excluded(self, user: int, positive: int) -> np.ndarray:
        edges = self.pos_edges
        own = np.array([positive] if positive >= 0 else [], dtype=np.int64)
        if user < 0:
            return own
        start = edges.starts[user]
        return np.concatenate(
            [edges.items[start : start + edges.counts[user]], own]
        )
