"""Retrieval head: similarity matrices, the loss chain and Recall@K."""

from easymatch.retrieval.frequency import FrequencyEstimator
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
from easymatch.retrieval.negatives import (
    candidate_item_ids,
    candidate_log_q,
    negative_mode,
)
from easymatch.retrieval.recall_at_k import RecallAtK
from easymatch.retrieval.similarity import (
    IN_BATCH,
    MASKED_LOGIT,
    MIXED,
    SAMPLED,
    hard_negative_similarity,
    in_batch_similarity,
    sampled_similarity,
    similarity_blocks,
    target_columns,
)
from easymatch.retrieval.task import Retrieval

__all__ = [
    "IN_BATCH",
    "MASKED_LOGIT",
    "MIXED",
    "SAMPLED",
    "FrequencyEstimator",
    "RecallAtK",
    "Retrieval",
    "append_hard_negatives",
    "apply_temperature",
    "candidate_item_ids",
    "candidate_log_q",
    "hard_negative_similarity",
    "in_batch_similarity",
    "logq_correction",
    "mask_accidental_hits",
    "negative_mode",
    "per_example_softmax_cross_entropy",
    "replica_loss_share",
    "sampled_similarity",
    "similarity_blocks",
    "softmax_cross_entropy",
    "target_columns",
    "weighted_loss_terms",
]
