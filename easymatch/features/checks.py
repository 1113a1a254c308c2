"""In-graph checks of input values, failing with one readable line.

The checks are stock TF ops, so they run alike in the input pipeline, in
exported towers and under TF Serving. Their message is marked (see
easymatch.errors) so the CLIs print it alone, as a DataError.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from easymatch.errors import CHECK_CLOSE, CHECK_OPEN

# What tf.strings.to_number accepts, minus nan/inf. Integers have at most
# 18 digits, so every accepted one fits int64.
INTEGER = r"\s*[+-]?[0-9]{1,18}\s*"
FLOAT = r"\s*[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?\s*"


def check(
    condition: tf.Tensor,
    template: str,
    values: Callable[[], list[tf.Tensor]],
) -> tf.Tensor:
    """Asserts `condition`; the message is `template` with each `{}`
    replaced by one of `values()`, which only runs when the check fails."""

    def fail() -> tf.Tensor:
        message = tf.strings.format(
            CHECK_OPEN + template + CHECK_CLOSE, values()
        )
        with tf.control_dependencies([tf.debugging.Assert(False, [message])]):
            return tf.constant(True)

    return tf.cond(condition, lambda: tf.constant(True), fail)


def first_where(values: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """The first of `values` where `mask` holds; only for a failed check's
    message, where one does."""
    return tf.boolean_mask(tf.reshape(values, [-1]), tf.reshape(mask, [-1]))[0]


def parse_numbers(
    tokens: tf.Tensor, dtype: tf.DType, subject: str
) -> tf.Tensor:
    """Text → int64 or float32; a token that is no finite number of that
    type fails the check, naming `subject` (feature and column)."""
    pattern = INTEGER if dtype.is_integer else FLOAT
    valid = tf.strings.regex_full_match(tokens, pattern)
    kind = "an integer id" if dtype.is_integer else "a finite number"
    parse_check = check(
        tf.reduce_all(valid),
        f"{subject}: value {{}} is not {kind}",
        lambda: [first_where(tokens, ~valid)],
    )
    with tf.control_dependencies([parse_check]):
        numbers = tf.strings.to_number(tokens, dtype)
    if dtype.is_integer:
        return numbers
    finite = tf.math.is_finite(numbers)
    # "1e999" matches FLOAT but overflows float32.
    range_check = check(
        tf.reduce_all(finite),
        f"{subject}: value {{}} is out of the float32 range",
        lambda: [first_where(tokens, ~finite)],
    )
    with tf.control_dependencies([range_check]):
        return tf.identity(numbers)
