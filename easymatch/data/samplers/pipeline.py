"""Sampling inside tf.data: negatives join each batch's item columns."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from easymatch.data.convert import FLOAT, STRING
from easymatch.data.samplers.negative_sampler import Sampler
from easymatch.errors import ConfigError
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)


def with_negatives(
    dataset: tf.data.Dataset,
    sampler: Sampler,
    item_columns: dict[str, str],
    first_step: int = 0,
) -> tf.data.Dataset:
    """Appends the sampler's negatives to every item-side column.

    ``dataset`` yields dicts of raw columns [B]; ``item_columns`` maps each
    item-side column to its kind ("string" or "float"). Each output element
    has those columns as the batch's B values followed by the negatives'
    (N simple, then hard), the other columns unchanged, and
    ``__neg_item_id__`` (string [N + n_hard]), ``__neg_log_q__`` (float32
    [N]) and, for hard samplers, ``hard_neg_indices`` (int64 [n_hard, 2],
    possibly empty: a dataset's structure cannot vary by batch).

    Batch k of the stream samples with step ``first_step + k``; a run
    resumed after k batches passes k to draw what it would have drawn.
    """
    have = dataset.element_spec
    for name in sampler.input_columns:
        if name not in have:
            raise ConfigError(
                f"sampler input column {name!r} is not read "
                f"(columns: {', '.join(have)})"
            )
    for name, kind in item_columns.items():
        if name not in sampler.attr_fields:
            raise ConfigError(
                f"item column {name!r} is not in the sampler's attr_fields "
                f"({', '.join(sampler.attr_fields)}): negatives lack it"
            )
        if kind not in (STRING, FLOAT):
            raise ValueError(f"column {name!r}: unknown kind {kind!r}")
    # Parsed once here, so that parallel map calls only read the arrays.
    floats = {
        name: sampler.items.floats(name)
        for name, kind in item_columns.items()
        if kind == FLOAT
    }
    texts = [name for name in item_columns if name not in floats]
    # Per text column (ids last): blob, starts, lengths; see TextColumn.
    types = [tf.float32] * len(floats) + [tf.string, tf.int64, tf.int64] * (
        len(texts) + 1
    )
    types.append(tf.float32)
    if sampler.has_hard:
        types.append(tf.int64)

    def sample(step: np.ndarray, *ids: np.ndarray) -> list[np.ndarray]:
        batch = dict(zip(sampler.input_columns, ids, strict=True))
        drawn = sampler.draw(batch, int(step))
        rows = np.concatenate([drawn.negatives, drawn.hard])
        out = [values[rows] for values in floats.values()]
        for name in [*texts, ""]:
            out += sampler.items.column(name).packed(rows)
        out.append(sampler.log_q[drawn.negatives])
        if sampler.has_hard:
            out.append(drawn.hard_indices)
        return out

    def add(step: tf.Tensor, columns: dict[str, tf.Tensor]) -> dict:
        ids = [columns[name] for name in sampler.input_columns]
        # Pure given (step, ids), so tf.data may run calls in parallel.
        drawn = iter(
            tf.numpy_function(
                sample, [step, *ids], types, stateful=False, name="sampler"
            )
        )
        negatives = {name: next(drawn) for name in floats}
        for name in [*texts, NEG_ITEM_ID]:
            blob, starts, lengths = next(drawn), next(drawn), next(drawn)
            negatives[name] = tf.strings.substr(blob, starts, lengths)
        out = dict(columns)
        for name, values in negatives.items():
            values = tf.ensure_shape(values, [None])
            if name in item_columns:
                values = tf.concat([columns[name], values], axis=0)
            out[name] = values
        out[NEG_LOG_Q] = tf.ensure_shape(next(drawn), [None])
        if sampler.has_hard:
            out[HARD_NEG_INDICES] = tf.ensure_shape(next(drawn), [None, 2])
        return out

    return dataset.enumerate(first_step).map(
        add, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
