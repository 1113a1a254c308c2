"""IdFeature: categorical values → embedding-row ids (SPEC §3.1)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tensorflow as tf

from easymatch.features.base import (
    PAD_ID,
    WEIGHT_SUFFIX,
    EmbeddedFeature,
    fill_empty_rows,
    pad_ids,
    split_tokens,
    to_text,
)
from easymatch.features.checks import check, first_where, parse_numbers

OOV_TOKEN = "<OOV>"


class IdFeature(EmbeddedFeature):
    """Hash buckets, integer buckets or a vocabulary, pooled sum or mean.

    Exactly one size rule applies, first match wins: `hash_bucket_size`,
    `num_buckets`, `vocab_list`, `vocab_dict`. With `fg_encoded` the column
    already holds final ids joined by `separator`.

    A `weighted` feature's values are "id:weight" pairs; a value without
    ":" (e.g. the default) weighs 1. Its `outputs` add float32 weights
    `[B, L]` (0 at padding) under `<name>__weight`.
    """

    def __init__(
        self,
        name: str,
        input_column: str,
        embedding_dim: int,
        *,
        side: str = "user",
        embedding_name: str = "",
        hash_bucket_size: int = 0,
        num_buckets: int = 0,
        vocab_list: Sequence[str] = (),
        vocab_dict: Mapping[str, int] | None = None,
        default_bucketize_value: int | None = None,
        default_value: str = "",
        separator: str = "\x1d",
        pooling: str = "sum",
        fg_encoded: bool = False,
        fg_encoded_default_value: str = "",
        weighted: bool = False,
    ) -> None:
        super().__init__(name, input_column, side)
        self.weighted = weighted
        self.embedding_dim = embedding_dim
        self.embedding_name = embedding_name or f"{name}_emb"
        self.default_value = default_value
        self.separator = separator
        self.pooling = pooling
        self.fg_encoded = fg_encoded
        self.fg_encoded_default_value = fg_encoded_default_value
        self._hash_bucket_size = hash_bucket_size
        self._table: tf.lookup.StaticHashTable | None = None
        # The field that bounds the ids, for messages.
        self._size_field = "hash_bucket_size"
        if hash_bucket_size > 0:
            self.num_embeddings = hash_bucket_size
        elif num_buckets > 0:
            self.num_embeddings = num_buckets
            self._size_field = "num_buckets"
        elif vocab_list:
            self._build_vocab_list(vocab_list, default_bucketize_value)
            self._size_field = "vocab_list"
        elif vocab_dict:
            self._build_vocab_dict(vocab_dict, default_bucketize_value)
            self._size_field = "vocab_dict"
        else:
            raise ValueError(
                f"id_feature {name}: needs hash_bucket_size, num_buckets, "
                "vocab_list or vocab_dict"
            )

    def _build_vocab_list(
        self, vocab_list: Sequence[str], default_bucketize_value: int | None
    ) -> None:
        if default_bucketize_value is None:
            # TorchEasyRec prepends the default and an OOV slot; a default
            # that is also in the list keeps its later (vocab) position.
            keys = [self.default_value, OOV_TOKEN, *vocab_list]
            oov = 1
        else:
            keys = list(vocab_list)
            oov = default_bucketize_value
        mapping = {key: index for index, key in enumerate(keys)}
        self.num_embeddings = len(keys)
        self._table = _static_table(mapping, oov)

    def _build_vocab_dict(
        self, vocab_dict: Mapping[str, int], default_bucketize_value: int | None
    ) -> None:
        oov = 1 if default_bucketize_value is None else default_bucketize_value
        mapping = dict(vocab_dict)
        if self.default_value:
            mapping[self.default_value] = 0
        self.num_embeddings = max(max(mapping.values()), oov) + 1
        self._table = _static_table(mapping, oov)

    @property
    def is_sparse(self) -> bool:
        return True

    def column_kind(self) -> str:
        return "string"

    def bucketize(self, tokens: tf.Tensor) -> tf.Tensor:
        """Flat string tokens → flat int64 ids."""
        if self.fg_encoded:
            return self._checked_ids(self._parse_ids(tokens))
        if self._hash_bucket_size > 0:
            return tf.strings.to_hash_bucket_fast(
                tokens, self._hash_bucket_size
            )
        if self._table is not None:
            return self._table.lookup(tokens)
        return self._checked_ids(self._parse_ids(tokens))

    @property
    def _subject(self) -> str:
        return f'feature "{self.feature_name}" (column "{self.input_column}")'

    def _parse_ids(self, tokens: tf.Tensor) -> tf.Tensor:
        return parse_numbers(tokens, tf.int64, self._subject)

    def _checked_ids(self, ids: tf.Tensor) -> tf.Tensor:
        in_range = tf.logical_and(ids >= 0, ids < self.num_embeddings)
        in_range_check = check(
            tf.reduce_all(in_range),
            f"{self._subject}: id {{}} out of range "
            f"[0, {self.num_embeddings}) — {self._size_field}",
            lambda: [first_where(ids, ~in_range)],
        )
        with tf.control_dependencies([in_range_check]):
            return tf.identity(ids)

    def transform(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.outputs(columns)[self.feature_name]

    def outputs(
        self, columns: dict[str, tf.Tensor], single_valued: bool = False
    ) -> dict[str, tf.Tensor]:
        raw = columns[self.input_column]
        column = to_text(raw)
        default = (
            self.fg_encoded_default_value
            if self.fg_encoded
            else self.default_value
        )
        if self._one_token_per_row(single_valued or raw.dtype.is_integer):
            if raw.dtype.is_integer and self._parses_numbers:
                # Every row has its one integer: to_number(as_string(x)) is x.
                ids = self._checked_ids(tf.cast(raw, tf.int64))
                return {self.feature_name: ids[:, None]}
            return {self.feature_name: self._single_token_ids(column, default)}
        tokens = fill_empty_rows(split_tokens(column, self.separator), default)
        if not self.weighted:
            ids = self.bucketize(tokens.values)
            return {self.feature_name: pad_ids(tokens.with_flat_values(ids))}
        keys, weights = split_weights(tokens.values, self._subject)
        ids = pad_ids(tokens.with_flat_values(self.bucketize(keys)))
        padded_weights = tokens.with_flat_values(weights).to_tensor(
            0.0, shape=tf.shape(ids)
        )
        return {
            self.feature_name: ids,
            self.feature_name + WEIGHT_SUFFIX: padded_weights,
        }

    @property
    def _parses_numbers(self) -> bool:
        """Whether `bucketize` reads its tokens as the ids themselves."""
        return self.fg_encoded or (
            self._hash_bucket_size == 0 and self._table is None
        )

    def _one_token_per_row(self, integer_column: bool) -> bool:
        # An integer's text ("-12") splits into itself unless the separator
        # shares a character with it.
        return (
            integer_column
            and not self.weighted
            and not set(self.separator) & set("-0123456789")
        )

    def _single_token_ids(self, column: tf.Tensor, default: str) -> tf.Tensor:
        """What splitting gives a column of at most one token per row, at
        a fraction of the cost: "" is missing, so `default` or padding."""
        present = tf.strings.length(column) > 0
        if default:
            return self.bucketize(tf.where(present, column, default))[:, None]
        # "0" is a valid token for every bucketizer; those rows are padding.
        ids = self.bucketize(tf.where(present, column, "0"))
        return tf.where(present, ids, PAD_ID)[:, None]


def split_weights(
    tokens: tf.Tensor, subject: str
) -> tuple[tf.Tensor, tf.Tensor]:
    """ "id:weight" tokens → (id text, float32 weight); no ":" weighs 1.

    Splits at the last ":", so ids may contain ":" themselves.
    """
    weighted = tf.strings.regex_full_match(tokens, ".*:.*")
    weights = tf.strings.regex_replace(tokens, "^.*:", "")
    return (
        tf.strings.regex_replace(tokens, ":[^:]*$", ""),
        parse_numbers(
            tf.where(weighted, weights, "1"), tf.float32, f"{subject} weight"
        ),
    )


def _static_table(
    mapping: Mapping[str, int], oov: int
) -> tf.lookup.StaticHashTable:
    keys = tf.constant(list(mapping.keys()), tf.string)
    values = tf.constant(list(mapping.values()), tf.int64)
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values), default_value=oov
    )
