"""The retrieval options the input pipeline and the loss both read."""

from __future__ import annotations

import dataclasses
from typing import Any

from easymatch.side_inputs import needs_item_ids

TRAIN_COUNTS = "train_counts"
STREAMING = "streaming"


@dataclasses.dataclass(frozen=True)
class CandidateProbabilitySpec:
    """Where logQ correction of in-batch candidates takes item
    probabilities: exact training counts, or the streaming estimate
    (with its `streaming` options)."""

    source: str = TRAIN_COUNTS
    streaming: tuple[tuple[str, Any], ...] = ()

    def get_config(self) -> dict[str, Any]:
        """MatchModel's `candidate_probability` option."""
        return {"source": self.source, **dict(self.streaming)}


@dataclasses.dataclass(frozen=True)
class RetrievalSpec:
    """Negatives, similarity, loss options and metrics of a two-tower model.

    `item_id_column`: the column of the positives' item ids, set exactly
    when the loss compares item ids (`needs_item_ids`). Hard negatives
    are the sampler's: they reach the loss as a side input when it adds
    them.
    """

    similarity: str = "INNER_PRODUCT"
    temperature: float = 1.0
    in_batch_negative: bool = False
    mixed_negatives: bool = False
    logq_correction: bool = False
    remove_accidental_hits: bool = False
    candidate_probability: CandidateProbabilitySpec = CandidateProbabilitySpec()
    item_id_column: str | None = None
    recall_top_ks: tuple[int, ...] = ()
    train_recall_top_ks: tuple[int, ...] = ()
    train_recall_decays: tuple[tuple[float, int], ...] = ()

    @property
    def needs_item_ids(self) -> bool:
        return needs_item_ids(
            in_batch_negative=self.in_batch_negative,
            mixed_negatives=self.mixed_negatives,
            logq_correction=self.logq_correction,
            remove_accidental_hits=self.remove_accidental_hits,
        )

    @property
    def counts_column(self) -> str | None:
        """The item id column whose exact training counts logQ reads, or
        None: only logQ of in-batch candidates from `train_counts` does."""
        if not self.logq_correction:
            return None
        if self.candidate_probability.source != TRAIN_COUNTS:
            return None
        if not (self.in_batch_negative or self.mixed_negatives):
            return None
        return self.item_id_column
