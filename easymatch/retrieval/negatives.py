"""What the loss needs to know about each candidate column.

Item rows come in SPEC §3.8's layout: B positives, N sampled negatives,
n_hard hard negatives; ``similarity_blocks`` turns them into a simple block
and a hard block, by mode:

- IN_BATCH (``in_batch_negative``): u·vᵀ over all M item rows, target i.
- SAMPLED (sampler mode, TER's default): [own positive | N shared
  negatives], target 0.
- MIXED (easymatch's ``mixed_negatives``): u·vᵀ over the B + N simple rows,
  target i: the batch's other positives join the sampled negatives.

For logQ correction, each column's log q is the log of the candidate's
expected count among the row's candidates (TFRS, tf.nn.sampled_softmax_loss):
an in-batch column gets its item's expected count in the batch (exact
training counts or a streaming estimate, ``candidate_probability``), a
sampled column log(N·q) with q from the sampler's weights, a hard column
0 (hard negatives are chosen, not drawn). In SAMPLED mode column 0 is not
corrected: the positive is the label, not a draw from either distribution
(the samplers exclude it), so its uncorrected logit plus the corrected
negatives estimate the full softmax's partition function by importance
sampling. Both kinds of count are per batch, so MIXED's two blocks are on
one scale.
"""

from __future__ import annotations

import tensorflow as tf
from keras import ops

from easymatch.retrieval.similarity import IN_BATCH, MIXED, SAMPLED

# Column 0 of SAMPLED mode is every row's positive, never masked; item id
# hashes are >= 0, so this placeholder id matches no query.
NO_ITEM = -1


def negative_mode(in_batch_negative: bool, mixed_negatives: bool) -> str:
    if in_batch_negative and mixed_negatives:
        raise ValueError(
            "in_batch_negative already scores every item row; "
            "mixed_negatives is for sampler mode"
        )
    if in_batch_negative:
        return IN_BATCH
    return MIXED if mixed_negatives else SAMPLED


def sampled_log_count(neg_log_q: tf.Tensor) -> tf.Tensor:
    """log(N·q) of each of the N sampled negatives, from log q [N]."""
    log_q = ops.cast(neg_log_q, "float32")
    count = ops.cast(ops.shape(log_q)[0], "float32")
    return log_q + ops.log(count)


def candidate_log_q(
    mode: str,
    num_columns: tf.Tensor,
    in_batch_log_q: tf.Tensor | None,
    neg_log_q: tf.Tensor | None,
) -> tf.Tensor:
    """log q [C] of the simple block's columns (see the module doc).

    Args:
        mode: IN_BATCH, SAMPLED or MIXED.
        num_columns: C, the simple block's width.
        in_batch_log_q: [B], per-batch log probability of each positive's
            item; needed by IN_BATCH and MIXED.
        neg_log_q: [N], the sampler's log q of each sampled negative; None
            without a sampler (IN_BATCH only).
    """
    parts = []
    if mode == SAMPLED:
        parts.append(ops.zeros((1,), "float32"))
    else:
        parts.append(ops.cast(in_batch_log_q, "float32"))
    if neg_log_q is not None:
        parts.append(sampled_log_count(neg_log_q))
    known = ops.concatenate(parts, axis=0)
    # IN_BATCH with hard rows: their columns come last, uncorrected.
    rest = num_columns - ops.shape(known)[0]
    return ops.concatenate([known, ops.zeros((rest,), "float32")], axis=0)


def candidate_item_ids(
    mode: str,
    num_columns: tf.Tensor,
    item_ids: tf.Tensor,
    neg_item_ids: tf.Tensor | None,
) -> tf.Tensor:
    """Item id [C] of each simple-block column, for accidental hits.

    Args:
        mode: IN_BATCH, SAMPLED or MIXED.
        num_columns: C, the simple block's width.
        item_ids: [B], the batch's positive items.
        neg_item_ids: [N + n_hard], the sampled then hard negatives' items;
            None without a sampler.
    """
    item_ids = ops.cast(item_ids, "int64")
    if neg_item_ids is None:
        return item_ids
    negatives = ops.cast(neg_item_ids, "int64")
    if mode == SAMPLED:
        first = ops.full((1,), NO_ITEM, "int64")
    else:
        first = item_ids
    ids = ops.concatenate([first, negatives], axis=0)
    return ids[:num_columns]
