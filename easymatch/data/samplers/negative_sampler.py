"""The sampler base class and NegativeSampler (SPEC §3.8).

Randomness: every call draws from ``default_rng([seed, step, digest])``,
where ``step`` is the batch's position in the stream (the pipeline passes
it) and ``digest`` hashes the table rows of the batch's ids. A call's
output depends on nothing else, so tf.data may run calls in any order on
any thread. Worker k > 0 of a cluster draws from its own stream,
``default_rng([seed, step, digest, k])`` (``for_stream``): workers never
share draws, and worker 0 draws what one process draws. Training
samplers take the run seed (training/run_seed.py), evaluation's 0.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from easymatch.data.samplers.alias import AliasTable
from easymatch.data.samplers.tables import ItemTable
from easymatch.errors import DataError
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)

# Rejection rounds before falling back to an exact draw from the weights
# with the excluded items zeroed; this bounds the work of a batch whose
# exclusions cover most of the weight.
MAX_REJECTION_ROUNDS = 16


@dataclass
class Draw:
    """Item-table rows picked for one batch."""

    negatives: np.ndarray
    hard: np.ndarray = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    hard_indices: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 2), dtype=np.int64)
    )


class Sampler:
    """Base: subclasses pick rows; this class turns rows into columns.

    ``sample`` returns, for N = ``num_sample`` simple negatives followed by
    the hard negatives: each attr field → its values (numpy, UTF-8 bytes),
    ``__neg_item_id__`` → the items' ids (bytes), ``__neg_log_q__`` →
    float32 log(weight / total weight) of each simple negative, and
    ``hard_neg_indices`` → int64 [n_hard, 2] when n_hard > 0.
    """

    def __init__(
        self,
        items: ItemTable,
        num_sample: int,
        item_id_field: str,
        seed: int = 0,
    ) -> None:
        if num_sample < 1:
            raise ValueError(f"num_sample must be >= 1, got {num_sample}")
        self.items = items
        self.num_sample = num_sample
        self.item_id_field = item_id_field
        self.input_columns = [item_id_field]
        self.seed = seed
        # The cluster worker whose stream this draws (0: one process).
        self.stream = 0
        self.alias = AliasTable(items.weights)
        with np.errstate(divide="ignore"):
            log_q = np.log(items.weights / items.weights.sum())
        self.log_q = log_q.astype(np.float32)

    @property
    def attr_fields(self) -> list[str]:
        return list(self.items.attrs)

    @property
    def has_hard(self) -> bool:
        return False

    def draw(self, batch: dict[str, np.ndarray], step: int = 0) -> Draw:
        """Rows of the negatives; ``step`` varies the draw per batch."""
        raise NotImplementedError

    def for_stream(self, stream: int) -> Sampler:
        """This sampler (tables shared) drawing worker ``stream``'s
        negatives."""
        sampler = copy.copy(self)
        sampler.stream = stream
        return sampler

    def rng(self, step: int, *rows: np.ndarray) -> np.random.Generator:
        """One batch's generator: a function of the seed, the step and the
        table rows of the batch's ids (-1 for an absent id) only."""
        digest = hashlib.blake2b(digest_size=8)
        for array in rows:
            digest.update(np.ascontiguousarray(array, dtype=np.int64))
        key = int.from_bytes(digest.digest(), "little")
        entropy = [self.seed, step, key]
        if self.stream:
            entropy.append(self.stream)
        return np.random.default_rng(entropy)

    def sample(
        self, batch: dict[str, np.ndarray], step: int = 0
    ) -> dict[str, np.ndarray]:
        drawn = self.draw(batch, step)
        rows = np.concatenate([drawn.negatives, drawn.hard])
        out = {
            name: self.items.column(name).take(rows)
            for name in self.attr_fields
        }
        out[NEG_ITEM_ID] = self.items.ids.take(rows)
        out[NEG_LOG_Q] = self.log_q[drawn.negatives]
        if len(drawn.hard):
            out[HARD_NEG_INDICES] = drawn.hard_indices
        return out

    def draw_excluding(
        self,
        rng: np.random.Generator,
        size: int,
        rejected: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``size`` weighted rows, redrawing those ``rejected(slots, rows)``.

        Returns the rows and the slots still rejected after the bounded
        rounds, which the caller fills with ``draw_exact``.
        """
        rows = self.alias.draw(rng, size)
        todo = np.arange(size)
        for _ in range(MAX_REJECTION_ROUNDS):
            todo = todo[rejected(todo, rows[todo])]
            if len(todo) == 0:
                return rows, todo
            rows[todo] = self.alias.draw(rng, len(todo))
        return rows, todo[rejected(todo, rows[todo])]

    def draw_exact(
        self, rng: np.random.Generator, size: int, excluded: np.ndarray
    ) -> np.ndarray | None:
        """``size`` rows weighted with ``excluded`` zeroed; None if none."""
        weights = self.items.weights.copy()
        weights[excluded] = 0.0
        allowed = np.flatnonzero(weights > 0)
        if len(allowed) == 0:
            return None
        cumulative = np.cumsum(weights[allowed])
        at = np.searchsorted(
            cumulative, rng.random(size) * cumulative[-1], side="right"
        )
        return allowed[np.minimum(at, len(allowed) - 1)]


def contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each key is in the sorted array (vectorized)."""
    if len(sorted_keys) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[at] == keys


class NegativeSampler(Sampler):
    """Weighted items whose id is not in the batch, shared by its rows.

    TorchEasyRec draws B·ceil(N/B) and keeps the first N; as the draws are
    independent, drawing N directly has the same distribution.
    """

    def draw(self, batch: dict[str, np.ndarray], step: int = 0) -> Draw:
        in_batch = self.items.index.lookup(
            batch[self.item_id_field], self.item_id_field
        )
        rng = self.rng(step, in_batch)
        excluded = np.sort(in_batch[in_batch >= 0])
        rows, todo = self.draw_excluding(
            rng, self.num_sample, lambda _, rows: contains(excluded, rows)
        )
        if len(todo):
            exact = self.draw_exact(rng, len(todo), excluded)
            if exact is None:
                raise DataError(
                    f"{self.items.path}: the batch's items hold all the "
                    "sampling weight; no negative can be drawn"
                )
            rows[todo] = exact
        return Draw(rows)
