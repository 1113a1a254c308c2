"""Sequence features: one id or value per position of a delimited sequence.

Positions of the sub-features of one sequence stay aligned, so an empty
element keeps its position and takes the default ("0" when the default is
empty, as TorchEasyRec does). An empty or null sequence has length 0
(SPEC §6 decision).
"""

from __future__ import annotations

import tensorflow as tf

from easymatch.features.base import LENGTH_SUFFIX, pad_ids, to_text
from easymatch.features.id_feature import IdFeature
from easymatch.features.raw_feature import RawFeature


def split_sequence(
    column: tf.Tensor, delim: str, max_length: int
) -> tf.RaggedTensor:
    """[B] text → [B, (L)] elements, L <= max_length; "" has no element."""
    column = to_text(column)
    elements = tf.strings.split(column, sep=delim)
    non_empty_rows = tf.strings.length(column) > 0
    elements = tf.ragged.boolean_mask(
        elements,
        elements.with_flat_values(
            tf.gather(non_empty_rows, elements.value_rowids())
        ),
    )
    return elements[:, :max_length]


def _check_sequence_length(name: str, sequence_length: int) -> None:
    if sequence_length <= 0:
        raise ValueError(
            f"sequence feature {name}: sequence_length must be > 0"
        )


class SequenceIdFeature(IdFeature):
    """An id sequence split on `sequence_delim`, cut to `sequence_length`.

    Ids are `int64 [B, L]` like a multi-value id feature, one per position.
    """

    def __init__(
        self,
        name: str,
        input_column: str,
        embedding_dim: int,
        *,
        sequence_length: int,
        sequence_delim: str = ";",
        **id_feature_kwargs,
    ) -> None:
        _check_sequence_length(name, sequence_length)
        if id_feature_kwargs.get("weighted"):
            # TorchEasyRec's sequence embeddings take no per-id weights.
            raise ValueError(
                f"sequence feature {name}: weighted ids are not supported "
                "in sequences"
            )
        if not id_feature_kwargs.get("default_value"):
            id_feature_kwargs["default_value"] = "0"
        super().__init__(name, input_column, embedding_dim, **id_feature_kwargs)
        self.sequence_length = sequence_length
        self.sequence_delim = sequence_delim

    @property
    def is_sequence(self) -> bool:
        return True

    def outputs(
        self, columns: dict[str, tf.Tensor], single_valued: bool = False
    ) -> dict[str, tf.Tensor]:
        elements = split_sequence(
            columns[self.input_column],
            self.sequence_delim,
            self.sequence_length,
        )
        tokens = elements.flat_values
        tokens = tf.where(tokens == "", self.default_value, tokens)
        ids = pad_ids(elements.with_flat_values(self.bucketize(tokens)))
        return {self.feature_name: ids}


class SequenceRawFeature(RawFeature):
    """A numeric sequence: per position `value_dim` numbers or a bucket id.

    Dense: float32 `[B, L, value_dim]`, zero beyond each row's length, and
    the length as int32 `[B]` under `<name>__length` (a sequence group of
    only dense features has no ids to count). With `boundaries`: bucket ids
    `int64 [B, L]` padded with -1, like a sequence id feature.
    """

    def __init__(
        self,
        name: str,
        input_column: str,
        *,
        sequence_length: int,
        sequence_delim: str = ";",
        **raw_feature_kwargs,
    ) -> None:
        _check_sequence_length(name, sequence_length)
        if not raw_feature_kwargs.get("default_value", "0"):
            raw_feature_kwargs["default_value"] = "0"
        super().__init__(name, input_column, **raw_feature_kwargs)
        if self.boundaries and self.value_dim != 1:
            # One embedding per position needs one bucket per position.
            raise ValueError(
                f"sequence raw feature {name}: boundaries need value_dim 1, "
                f"got {self.value_dim}"
            )
        self.sequence_length = sequence_length
        self.sequence_delim = sequence_delim

    @property
    def is_sequence(self) -> bool:
        return True

    def column_kind(self) -> str:
        return "string"

    def transform(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.outputs(columns)[self.feature_name]

    def outputs(
        self, columns: dict[str, tf.Tensor], single_valued: bool = False
    ) -> dict[str, tf.Tensor]:
        elements = split_sequence(
            columns[self.input_column],
            self.sequence_delim,
            self.sequence_length,
        )
        values = self._normalize(self.parse_text(elements.flat_values))
        if self.boundaries:
            ids = tf.raw_ops.Bucketize(
                input=values[:, 0], boundaries=self.boundaries
            )
            ids = elements.with_flat_values(tf.cast(ids, tf.int64))
            return {self.feature_name: pad_ids(ids)}
        lengths = elements.row_lengths()
        width = tf.reduce_max(tf.concat([lengths, [1]], axis=0))
        padded = elements.with_flat_values(values).to_tensor(
            0.0, shape=tf.stack([elements.nrows(), width, self.value_dim])
        )
        return {
            self.feature_name: padded,
            self.feature_name + LENGTH_SUFFIX: tf.cast(lengths, tf.int32),
        }
