"""The retrieval loss as a chain of small steps (SPEC §3.7).

Order, for the sampled (or in-batch) logits of one batch:

    apply_temperature → logq_correction → mask_accidental_hits
    → append_hard_negatives → softmax_cross_entropy

TER itself only divides by the temperature and takes the softmax cross
entropy; logQ correction and accidental-hit masking are optional extras with
the semantics of TFRS's Retrieval task. They apply to the sampled columns
only, so a model that uses them keeps the hard-negative block (from
``similarity_blocks``) apart and appends it after masking; without them,
the two blocks side by side can go straight to the loss. The two
commute (a masked logit is set, not shifted), so a model may mask first
and rank the masked, uncorrected scores for Recall@K.

Distribution: SPEC's weighted loss mean(ℓw)/mean(w) equals Σℓw/Σw, so the
global loss over replicas is (Σ_r num_r)/(Σ_r den_r) with the terms of
``weighted_loss_terms``. ``replica_loss_share`` returns num_r/Σ_r den_r,
the replica's share: Keras's TF optimizer sums gradients over replicas, so
the shares' gradients add up to the exact global gradient, even with
uneven replica batches. Keras divides compiled losses and ``add_loss``
terms by num_replicas_in_sync (``scale_loss_for_distribution``) but not a
value returned by an overridden ``compute_loss``/``train_step``: return
the share from such an override, or multiply it by num_replicas_in_sync
first. The loss to log is the share summed over replicas. Without sample
weights, w = 1 gives SPEC's plain mean.
"""

import tensorflow as tf
from keras import ops

from easymatch.retrieval.similarity import MASKED_LOGIT


def check_temperature(temperature: float) -> float:
    """The library's one check of a temperature (the config's is
    validate_model's, with the field's path)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return temperature


def apply_temperature(logits: tf.Tensor, temperature: float) -> tf.Tensor:
    """Returns logits / temperature (TER applies it to the whole matrix)."""
    check_temperature(temperature)
    return ops.cast(logits, "float32") / temperature


def logq_correction(logits: tf.Tensor, log_q: tf.Tensor) -> tf.Tensor:
    """Subtracts each candidate's log sampling probability.

    Every column is corrected, the positive's included, as TFRS's
    ``candidate_sampling_probability`` and tf.nn.sampled_softmax_loss do:
    an in-batch positive is itself a draw from the item distribution, and
    correcting all columns alike is what makes the sampled softmax an
    unbiased estimate of the full one. TFRS takes probabilities and clips
    them to [1e-6, 1] before the log; callers pass the log directly and
    own that clipping.

    Args:
        logits: [B, C].
        log_q: [C] (the same for every row) or [B, C].
    """
    return ops.cast(logits, "float32") - ops.cast(log_q, "float32")


def mask_accidental_hits(
    logits: tf.Tensor,
    positive_cols: tf.Tensor,
    query_item_ids: tf.Tensor,
    candidate_item_ids: tf.Tensor,
) -> tf.Tensor:
    """Sets to MASKED_LOGIT every non-positive copy of the row's positive.

    TFRS's remove_accidental_hits semantics: a candidate whose item id
    equals the row's positive item id is a false negative unless it is the
    positive column itself. TFRS adds float32.min/100 to the logit; the
    result is the same after softmax, and a fixed fill keeps the value
    finite whatever the logit was. In sampler mode column 0 holds a
    different item per row; it is every row's positive column and never
    masked, so its entry in candidate_item_ids does not matter.

    Args:
        logits: [B, C].
        positive_cols: int [B], the positive's column per row.
        query_item_ids: [B], each row's positive item id.
        candidate_item_ids: [C], the item id of each column; any dtype
            tf.equal supports (ints or strings).
    """
    logits = ops.cast(logits, "float32")
    same_item = ops.equal(
        ops.expand_dims(query_item_ids, 1),
        ops.expand_dims(candidate_item_ids, 0),
    )
    cols = ops.arange(ops.shape(logits)[1], dtype="int32")
    is_positive = ops.equal(
        ops.expand_dims(cols, 0),
        ops.expand_dims(ops.cast(positive_cols, "int32"), 1),
    )
    hit = ops.logical_and(same_item, ops.logical_not(is_positive))
    return ops.where(hit, MASKED_LOGIT, logits)


def append_hard_negatives(
    logits: tf.Tensor, hard_logits: tf.Tensor
) -> tf.Tensor:
    """Returns [B, C + K]: hard-negative columns after the sampled ones.

    Target columns stay valid because hard columns come last.
    """
    return ops.concatenate(
        [ops.cast(logits, "float32"), ops.cast(hard_logits, "float32")],
        axis=1,
    )


def per_example_softmax_cross_entropy(
    logits: tf.Tensor, target_cols: tf.Tensor
) -> tf.Tensor:
    """Returns ℓ_i = logsumexp(logits_i) − logits_{i, t_i}, float32 [B]."""
    logits = ops.cast(logits, "float32")
    # A sum with zeros, not take_along_axis: that fails on the [0, 0]
    # logits of an empty replica batch (the last step of an eval input
    # under several replicas). Adding zeros is exact.
    is_target = ops.one_hot(
        ops.cast(target_cols, "int32"), ops.shape(logits)[1], dtype="bool"
    )
    target_logit = ops.sum(ops.where(is_target, logits, 0.0), axis=1)
    return ops.logsumexp(logits, axis=1) - target_logit


def softmax_cross_entropy(
    logits: tf.Tensor,
    target_cols: tf.Tensor,
    sample_weight: tf.Tensor | None = None,
) -> tf.Tensor:
    """SPEC §3.7 on one replica: mean ℓ, or mean(ℓw)/mean(w), 0 if mean(w)=0.

    Args:
        logits: [B, C].
        target_cols: int [B].
        sample_weight: [B] or None.
    """
    losses = per_example_softmax_cross_entropy(logits, target_cols)
    if sample_weight is None:
        return ops.mean(losses)
    weight = ops.cast(sample_weight, "float32")
    return ops.divide_no_nan(ops.mean(losses * weight), ops.mean(weight))


def weighted_loss_terms(
    logits: tf.Tensor,
    target_cols: tf.Tensor,
    sample_weight: tf.Tensor | None = None,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Returns (Σℓw, Σw, B) as float32 scalars, all summable over replicas.

    The global loss is div_no_nan(Σ num, Σ den); the example count B is
    the weight of the batch's loss in the eval loss metric (SPEC §3.7).
    Without sample_weight, w = 1.
    """
    losses = per_example_softmax_cross_entropy(logits, target_cols)
    count = ops.cast(ops.shape(losses)[0], "float32")
    if sample_weight is None:
        return ops.sum(losses), count, count
    weight = ops.cast(sample_weight, "float32")
    return ops.sum(losses * weight), ops.sum(weight), count


def replica_loss_share(
    numerator: tf.Tensor, denominator: tf.Tensor
) -> tf.Tensor:
    """Returns numerator / Σ_replicas denominator (0 if that sum is 0).

    Summed over replicas this is the global loss; see the module doc for
    how it meets Keras's own loss scaling. Outside a replica context (no
    strategy, or cross-replica code such as Keras's symbolic build) the
    values are already global and the denominator is used as is.
    """
    # The weights are data, not a function of the model, so nothing needs
    # to flow back through the all-reduce.
    denominator = tf.stop_gradient(ops.cast(denominator, "float32"))
    context = tf.distribute.get_replica_context()
    if context is not None:
        denominator = context.all_reduce(
            tf.distribute.ReduceOp.SUM, denominator
        )
    return ops.divide_no_nan(ops.cast(numerator, "float32"), denominator)
