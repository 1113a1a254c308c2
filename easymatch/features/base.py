"""What every feature provides to the input pipeline and the model."""

from __future__ import annotations

import tensorflow as tf

from easymatch.specs.embedding import FeatureSpec, TableSpec

PAD_ID = -1
# Companion tensors of a feature, keyed `<feature name><suffix>`: a weighted
# id feature's weights and a dense sequence's lengths (EmbeddingGroup reads
# them).
WEIGHT_SUFFIX = "__weight"
LENGTH_SUFFIX = "__length"


class Feature(tf.Module):
    """One configured feature: raw columns in, one model tensor out.

    A `tf.Module` so that lookup tables are tracked into SavedModels.
    """

    def __init__(self, name: str, input_column: str, side: str) -> None:
        super().__init__(name=None)
        self.feature_name = name
        self.input_column = input_column
        self.side = side

    @property
    def is_sparse(self) -> bool:
        raise NotImplementedError

    @property
    def is_sequence(self) -> bool:
        return False

    def column_kind(self) -> str:
        """Returns "string" or "float": how the reader delivers the column."""
        raise NotImplementedError

    def transform(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        """The feature's own tensor (ids or values)."""
        raise NotImplementedError

    def outputs(
        self, columns: dict[str, tf.Tensor], single_valued: bool = False
    ) -> dict[str, tf.Tensor]:
        """Every tensor the model reads for this feature, by key.

        The feature's own tensor under its name, plus companions for
        weighted ids (`<name>__weight`) and dense sequences
        (`<name>__length`). `single_valued`: the input column is known to
        hold at most one value per row (it is an integer column), so a
        feature may skip splitting it; the result must not change.
        """
        return {self.feature_name: self.transform(columns)}

    def spec(self) -> FeatureSpec:
        """What the model reads of this feature (`EmbeddingGroup`)."""
        raise NotImplementedError


class EmbeddedFeature(Feature):
    """A feature whose ids index the embedding table `embedding_name`
    (`num_embeddings` rows of `embedding_dim`), pooled by `pooling`."""

    embedding_name: str
    num_embeddings: int
    embedding_dim: int
    pooling: str
    weighted: bool = False

    def spec(self) -> FeatureSpec:
        return FeatureSpec.sparse(
            self.feature_name,
            TableSpec(
                self.embedding_name, self.num_embeddings, self.embedding_dim
            ),
            self.pooling,
            self.weighted,
        )


def split_tokens(column: tf.Tensor, separator: str) -> tf.RaggedTensor:
    """Splits a [B] string column, dropping empty tokens."""
    tokens = tf.strings.split(column, sep=separator)
    return tf.ragged.boolean_mask(tokens, tf.strings.length(tokens) > 0)


def fill_empty_rows(tokens: tf.RaggedTensor, default: str) -> tf.RaggedTensor:
    """Gives every row without tokens the single token `default`."""
    if default == "":
        return tokens
    needs_default = tokens.row_lengths() == 0
    filler = tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(tf.cast(needs_default, tf.int32))], default),
        tf.cast(needs_default, tf.int64),
    )
    return tf.concat([tokens, filler], axis=1)


def pad_ids(ids: tf.RaggedTensor) -> tf.Tensor:
    """Ragged ids → int64 [B, max(L, 1)] left-aligned, padded with -1.

    At least one column so that pooling never sees a zero-width tensor.
    """
    width = tf.reduce_max(tf.concat([ids.row_lengths(), [1]], axis=0))
    rows = ids.nrows()
    return ids.to_tensor(default_value=PAD_ID, shape=tf.stack([rows, width]))


def to_text(column: tf.Tensor) -> tf.Tensor:
    """Serving requests carry ints as ints; the pipeline carries text."""
    if column.dtype == tf.string:
        return column
    return tf.strings.as_string(column)
