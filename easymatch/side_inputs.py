"""Side inputs: what the loss reads besides the features, defined once.

A batch is `(features, side_inputs, label, sample_weight)`. The features
dict holds only feature tensors; `side_inputs` holds what the input
pipeline adds for the loss, under these keys, each present only when a
sampler or a model option produces it. The samplers' raw columns carry
the same names, so nothing is renamed between sampler and model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # config validation uses the rule without TensorFlow
    import tensorflow as tf

# int64 [n_hard, 2]: (row, hard-negative position) of each hard negative.
HARD_NEG_INDICES = "hard_neg_indices"
# int64 [B]: fingerprints of the positives' item ids.
ITEM_ID = "__item_id__"
# int64 [N + n_hard]: fingerprints of the negatives' item ids.
NEG_ITEM_ID = "__neg_item_id__"
# float32 [N]: the sampler's log probability of each sampled negative.
NEG_LOG_Q = "__neg_log_q__"


def needs_item_ids(
    *,
    in_batch_negative: bool,
    mixed_negatives: bool,
    logq_correction: bool,
    remove_accidental_hits: bool,
) -> bool:
    """Whether the loss compares item ids (so the batch needs ITEM_ID):
    masking accidental hits always does, logQ correction when in-batch
    candidates (in-batch or mixed mode) are corrected by their item."""
    in_batch = in_batch_negative or mixed_negatives
    return remove_accidental_hits or (logq_correction and in_batch)


def required(value: tf.Tensor | None, key: str, option: str) -> tf.Tensor:
    """`value`, the side input `key` (None when the batch lacks it), or an
    error naming the option that needs it."""
    if value is None:
        raise ValueError(
            f"{option} needs side_inputs[{key!r}]; the input pipeline adds "
            "it from the item id column and the sampler"
        )
    return value

