"""User-item similarity matrices of the match model (SPEC §3.6).

Item rows arrive in the batch layout of SPEC §3.8: the B positives first,
then the N sampled negatives, then the n_hard hard negatives. Every function
returns float32 logits (the −1e32 fill does not fit in float16, SPEC §6.4)
and works under ``tf.function`` with unknown B, N and n_hard.
"""

import tensorflow as tf
from keras import ops

# Logit of a candidate that must not count in the softmax. exp() of it is
# exactly 0 after logsumexp's max shift. Unlike -inf it stays NaN-free
# under later arithmetic (-inf * 0, -inf + inf), and it is far enough
# from the float32 limit that sums and temperature divisions stay finite.
MASKED_LOGIT = -1e32
# How item rows become a row's candidates (see similarity_blocks).
IN_BATCH, SAMPLED, MIXED = "in_batch", "sampled", "mixed"
MODES = (IN_BATCH, SAMPLED, MIXED)


def _float32(x: tf.Tensor) -> tf.Tensor:
    return ops.cast(x, "float32")


def in_batch_similarity(user_emb: tf.Tensor, item_emb: tf.Tensor) -> tf.Tensor:
    """Returns u·vᵀ, [B, M]: every item row is a candidate for every user."""
    return ops.matmul(_float32(user_emb), ops.transpose(_float32(item_emb)))


def sampled_similarity(user_emb: tf.Tensor, item_emb: tf.Tensor) -> tf.Tensor:
    """Returns [B, 1 + N]: the own positive, then the shared negatives.

    Args:
        user_emb: [B, d].
        item_emb: [B + N, d], row i < B is user i's positive.
    """
    user = _float32(user_emb)
    item = _float32(item_emb)
    batch_size = ops.shape(user)[0]
    # Without this, an item tensor with a single row would broadcast in the
    # rowwise product instead of failing.
    check = tf.debugging.assert_greater_equal(
        ops.shape(item)[0],
        batch_size,
        message="sampled similarity needs at least B item rows",
    )
    with tf.control_dependencies([check]):
        pos = ops.sum(user * item[:batch_size], axis=-1, keepdims=True)
        neg = ops.matmul(user, ops.transpose(item[batch_size:]))
    return ops.concatenate([pos, neg], axis=1)


def _hard_index_checks(
    indices: tf.Tensor, batch_size: tf.Tensor, num_cols: tf.Tensor
) -> list[tf.Operation | None]:
    rows, cols = indices[:, 0], indices[:, 1]
    in_range = [
        tf.debugging.assert_non_negative(
            rows, message="hard_neg_indices row < 0"
        ),
        tf.debugging.assert_less(
            rows, batch_size, message="hard_neg_indices row >= batch size"
        ),
        tf.debugging.assert_non_negative(
            cols, message="hard_neg_indices column < 0"
        ),
    ]
    # Counting hits per cell needs valid indices: scatter_nd fails on CPU
    # and silently drops on GPU otherwise.
    with tf.control_dependencies(in_range):
        counts = ops.scatter(
            indices,
            ops.ones_like(rows),
            (batch_size, num_cols),
        )
        unique = tf.debugging.assert_less_equal(
            ops.max(counts, initial=0),
            ops.cast(1, counts.dtype),
            message="hard_neg_indices holds a duplicate (row, col) pair",
        )
    return [*in_range, unique]


def hard_negative_similarity(
    user_emb: tf.Tensor,
    hard_item_emb: tf.Tensor,
    hard_neg_indices: tf.Tensor,
) -> tf.Tensor:
    """Returns the [B, K] hard-negative block, K = max(H[:, 1]) + 1.

    Cell (H[j, 0], H[j, 1]) holds u[H[j, 0]]·hard_item_emb[j]; every other
    cell is MASKED_LOGIT. This is a scatter into a filled matrix, not TER's
    sparse→dense sum: duplicate (row, col) pairs, which TER would add up,
    raise InvalidArgumentError (SPEC §6.4). n_hard = 0 gives K = 0.

    Args:
        user_emb: [B, d].
        hard_item_emb: [n_hard, d].
        hard_neg_indices: int [n_hard, 2], (user row, hard slot of the user).
    """
    user = _float32(user_emb)
    hard_item = _float32(hard_item_emb)
    indices = ops.cast(hard_neg_indices, "int32")
    batch_size = ops.shape(user)[0]
    num_cols = ops.max(indices[:, 1], initial=-1) + 1
    checks = _hard_index_checks(indices, batch_size, num_cols)
    checks.append(
        tf.debugging.assert_equal(
            ops.shape(hard_item)[0],
            ops.shape(indices)[0],
            message="one hard item row per hard_neg_indices row",
        )
    )
    with tf.control_dependencies(checks):
        hard_user = ops.take(user, indices[:, 0], axis=0)
        scores = ops.sum(hard_user * hard_item, axis=-1)
        filled = ops.full((batch_size, num_cols), MASKED_LOGIT, "float32")
        return ops.scatter_update(filled, indices, scores)


def similarity_blocks(
    user_emb: tf.Tensor,
    item_emb: tf.Tensor,
    mode: str,
    hard_neg_indices: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor | None]:
    """(simple block [B, C], hard block [B, K] or None) of one batch.

    The last n_hard item rows are the hard negatives when hard_neg_indices
    is given. Simple block by mode: IN_BATCH u·vᵀ over all M item rows
    (hard rows included and hard_neg_indices ignored, as in TER); SAMPLED
    [pos | neg] over the B + N simple rows; MIXED u·vᵀ over those rows (the
    batch's positives and the sampled negatives in one softmax). B is the
    user row count, so a user tensor sliced to the label batch (DSSM v2)
    fixes it.

    Args:
        user_emb: [B, d].
        item_emb: [M, d] with M = B + N (+ n_hard).
        mode: IN_BATCH, SAMPLED or MIXED (static).
        hard_neg_indices: int [n_hard, 2] or None.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == IN_BATCH:
        return in_batch_similarity(user_emb, item_emb), None
    item = ops.convert_to_tensor(item_emb)
    num_simple = ops.shape(item)[0]
    if hard_neg_indices is not None:
        num_simple -= ops.shape(hard_neg_indices)[0]
    if mode == MIXED:
        simple = in_batch_similarity(user_emb, item[:num_simple])
    else:
        simple = sampled_similarity(user_emb, item[:num_simple])
    if hard_neg_indices is None:
        return simple, None
    hard = hard_negative_similarity(
        user_emb, item[num_simple:], hard_neg_indices
    )
    return simple, hard


def target_columns(similarity: tf.Tensor, in_batch_negative: bool) -> tf.Tensor:
    """Column of each row's positive, int32 [B]: arange(B) or zeros(B).

    in_batch_negative: whether row i's positive is column i (IN_BATCH and
    MIXED) rather than column 0 (SAMPLED).
    """
    batch_size = ops.shape(similarity)[0]
    if in_batch_negative:
        return ops.arange(batch_size, dtype="int32")
    return ops.zeros((batch_size,), dtype="int32")
