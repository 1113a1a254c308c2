"""HardNegativeSampler and HardNegativeSamplerV2 (SPEC §3.8).

Each user's hard negatives are their first ``num_hard_sample`` edges in
the hard-negative edge table, in file order: TorchEasyRec's GraphLearn
"full" strategy takes a user's neighbours in stored order, so the result
is deterministic and needs no randomness.
"""

from __future__ import annotations

import numpy as np

from easymatch.data.samplers.edges import EdgeTable
from easymatch.data.samplers.negative_sampler import Draw, NegativeSampler
from easymatch.data.samplers.negative_sampler_v2 import NegativeSamplerV2
from easymatch.data.samplers.tables import ItemTable


class HardNegatives:
    """Per batch row, up to ``cap`` items of that row's user."""

    def __init__(self, edges: EdgeTable, cap: int, user_id_field: str) -> None:
        if cap < 1:
            raise ValueError(f"num_hard_sample must be >= 1, got {cap}")
        self.edges = edges
        self.cap = cap
        self.user_id_field = user_id_field

    def draw(
        self, batch: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Item rows [n_hard] and (batch row, position) pairs [n_hard, 2]."""
        users = self.edges.users.lookup(
            batch[self.user_id_field], self.user_id_field
        )
        known = users >= 0
        counts = np.zeros(len(users), dtype=np.int64)
        counts[known] = np.minimum(self.edges.counts[users[known]], self.cap)
        starts = np.zeros(len(users), dtype=np.int64)
        starts[known] = self.edges.starts[users[known]]
        first = np.cumsum(counts) - counts
        position = np.arange(counts.sum()) - np.repeat(first, counts)
        rows = self.edges.items[np.repeat(starts, counts) + position]
        row_of = np.repeat(np.arange(len(users)), counts)
        return rows, np.stack([row_of, position], axis=1).astype(np.int64)


class _WithHardNegatives:
    """Appends each row's hard negatives to the base sampler's draw."""

    hard: HardNegatives

    @property
    def has_hard(self) -> bool:
        return True

    def draw(self, batch: dict[str, np.ndarray], step: int = 0) -> Draw:
        rows, indices = self.hard.draw(batch)
        return Draw(super().draw(batch, step).negatives, rows, indices)


class HardNegativeSampler(_WithHardNegatives, NegativeSampler):
    """NegativeSampler negatives, then each row's hard negatives."""

    def __init__(
        self,
        items: ItemTable,
        num_sample: int,
        item_id_field: str,
        user_id_field: str,
        hard_edges: EdgeTable,
        num_hard_sample: int,
        seed: int = 0,
    ) -> None:
        super().__init__(items, num_sample, item_id_field, seed)
        self.input_columns = [item_id_field, user_id_field]
        self.hard = HardNegatives(hard_edges, num_hard_sample, user_id_field)


class HardNegativeSamplerV2(_WithHardNegatives, NegativeSamplerV2):
    """NegativeSamplerV2 negatives, then each row's hard negatives."""

    def __init__(
        self,
        items: ItemTable,
        num_sample: int,
        item_id_field: str,
        user_id_field: str,
        pos_edges: EdgeTable,
        pos_edge_path: str,
        hard_edges: EdgeTable,
        num_hard_sample: int,
        seed: int = 0,
    ) -> None:
        super().__init__(
            items,
            num_sample,
            item_id_field,
            user_id_field,
            pos_edges,
            pos_edge_path,
            seed,
        )
        self.hard = HardNegatives(hard_edges, num_hard_sample, user_id_field)
