"""Sequence id features: one id per position of a delimited sequence."""

from __future__ import annotations

import tensorflow as tf

from easymatch.features.base import pad_ids, to_text
from easymatch.features.id_feature import IdFeature


class SequenceIdFeature(IdFeature):
    """An id sequence split on `sequence_delim`, cut to `sequence_length`.

    Positions of the sub-features of one sequence stay aligned, so an empty
    element keeps its position and takes the default ("0" when the default
    is empty, as TorchEasyRec does). An empty or null sequence has length 0
    (SPEC §6 decision).
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
        if sequence_length <= 0:
            raise ValueError(
                f"sequence feature {name}: sequence_length must be > 0"
            )
        if not id_feature_kwargs.get("default_value"):
            id_feature_kwargs["default_value"] = "0"
        super().__init__(name, input_column, embedding_dim, **id_feature_kwargs)
        self.sequence_length = sequence_length
        self.sequence_delim = sequence_delim

    @property
    def is_sequence(self) -> bool:
        return True

    def transform(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        column = to_text(columns[self.input_column])
        elements = tf.strings.split(column, sep=self.sequence_delim)
        non_empty_rows = tf.strings.length(column) > 0
        elements = tf.ragged.boolean_mask(
            elements,
            elements.with_flat_values(
                tf.gather(non_empty_rows, elements.value_rowids())
            ),
        )
        elements = elements[:, : self.sequence_length]
        tokens = elements.flat_values
        tokens = tf.where(tokens == "", self.default_value, tokens)
        return pad_ids(elements.with_flat_values(self.bucketize(tokens)))
