"""Retrieval head: similarity matrices, the loss chain and Recall@K."""

from easymatch.retrieval.loss import (
    append_hard_negatives,
    apply_temperature,
    logq_correction,
    mask_accidental_hits,
    per_example_softmax_cross_entropy,
    replica_loss_share,
    softmax_cross_entropy,
    weighted_loss_terms,
)
from easymatch.retrieval.recall_at_k import RecallAtK
from easymatch.retrieval.similarity import (
    MASKED_LOGIT,
    hard_negative_similarity,
    in_batch_similarity,
    match_similarity,
    sampled_similarity,
    target_columns,
)

__all__ = [
    "MASKED_LOGIT",
    "RecallAtK",
    "append_hard_negatives",
    "apply_temperature",
    "hard_negative_similarity",
    "in_batch_similarity",
    "logq_correction",
    "mask_accidental_hits",
    "match_similarity",
    "per_example_softmax_cross_entropy",
    "replica_loss_share",
    "sampled_similarity",
    "softmax_cross_entropy",
    "target_columns",
    "weighted_loss_terms",
]
