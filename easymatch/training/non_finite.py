"""Stops training at the first step whose loss, gradients or float inputs
are not finite, before its weights reach a checkpoint.

`MatchModel.train_step` returns, under reserved log keys, one finiteness
flag per loss term, gradient and float input, and the step's loss terms.
The step function stops its call after such a step; the loop then raises
`NonFiniteError` naming the step, the loss terms and the first
non-finite input or gradient. The checkpoint hook never ran for that
step, so model_dir's latest checkpoint is the last good one.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from easymatch.errors import EasyMatchError
from easymatch.models.match_model import FINITE, LOSS_TERMS, MatchModel


class NonFiniteError(EasyMatchError):
    """Training produced a NaN or infinity (e.g. a too large learning
    rate, or an input normalizer dividing by zero)."""


def all_finite(logs: dict, strategy: tf.distribute.Strategy) -> tf.Tensor:
    """Inside the step function: whether every replica's step was finite."""
    # ReduceOp has no MIN: count the replicas with a non-finite flag.
    bad = strategy.run(lambda flags: 1 - tf.reduce_min(flags), (logs[FINITE],))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, bad, None) == 0


def split_logs(
    logs: dict, strategy: tf.distribute.Strategy
) -> tuple[dict, np.ndarray, np.ndarray]:
    """(the metrics, the finiteness flags, the loss terms) of a call's
    last step, flags combined over replicas."""
    metrics = {k: v for k, v in logs.items() if k not in (FINITE, LOSS_TERMS)}
    flags = np.min(
        [
            np.asarray(value)
            for value in strategy.experimental_local_results(logs[FINITE])
        ],
        axis=0,
    )
    terms = np.asarray(strategy.experimental_local_results(logs[LOSS_TERMS])[0])
    return metrics, flags, terms


def check_finite(
    model: MatchModel,
    flags: np.ndarray,
    terms: np.ndarray,
    step: int,
    saved_step: int | None,
) -> None:
    """Raises NonFiniteError unless every flag is set; the message names
    a non-finite input feature first (the likely cause), else the first
    non-finite gradient."""
    if flags.all():
        return
    names = model.finite_check_names()
    bad = [name for name, ok in zip(names, flags, strict=True) if not ok]
    inputs = [name for name in bad if name.startswith("input feature")]
    culprit = (inputs or [n for n in bad if not n.startswith("loss")] or bad)[0]
    kept = (
        f"the latest checkpoint stays the one of step {saved_step}"
        if saved_step is not None
        else "no checkpoint was written"
    )
    raise NonFiniteError(
        f"step {step}: non-finite training: loss terms "
        f"softmax_cross_entropy={terms[0]:.6g}, "
        f"regularization={terms[1]:.6g}; first non-finite: {culprit}; "
        f"{kept}"
    )
