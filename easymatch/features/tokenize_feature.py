"""TokenizeFeature: text → token ids of a tokenizer.json, pooled.

TorchEasyRec's tokenize_feature (tzrec/features/tokenize_feature.py):
an optional text_normalizer, then the `vocab_file` tokenizer's word ids,
embedded and pooled like a multi-value id feature; the table has the
tokenizer's vocab size rows. Both steps run in stock TF ops (regex,
string, unicode and lookup ops), in the input pipeline and inside the
exported tower alike.
"""

from __future__ import annotations

import os

import tensorflow as tf

from easymatch.config.features import FeatureInfo
from easymatch.features.base import EmbeddedFeature, pad_ids
from easymatch.features.bpe import BytePairEncoder
from easymatch.features.id_feature import IdFeature
from easymatch.features.tokenizer_file import read_tokenizer
from easymatch.protos import feature_pb2

_OPT = feature_pb2.TextNormalizeOption
# TorchEasyRec's options when norm_options is empty.
DEFAULT_NORM_OPTIONS = (
    _OPT.TEXT_LOWER2UPPER,
    _OPT.TEXT_SBC2DBC,
    _OPT.TEXT_CHT2CHS,
    _OPT.TEXT_FILTER,
)
# Options easymatch cannot reproduce: pyfg's traditional → simplified
# table and built-in stop-character list are not available. They are
# noted at load (config/validate_features.py), not applied.
NOT_APPLIED = (_OPT.TEXT_CHT2CHS, _OPT.TEXT_FILTER)


def norm_options(feature: feature_pb2.TokenizeFeature) -> list[int]:
    if not feature.HasField("text_normalizer"):
        return []
    options = list(feature.text_normalizer.norm_options)
    return options or list(DEFAULT_NORM_OPTIONS)


class TokenizeFeature(EmbeddedFeature):
    """Text [B] → token ids int64 [B, L] padded with -1."""

    def __init__(
        self,
        name: str,
        input_column: str,
        embedding_dim: int,
        vocab_file: str,
        *,
        side: str = "user",
        embedding_name: str = "",
        pooling: str = "sum",
        default_value: str = "",
        options: list[int] | None = None,
        max_length: int = 0,
    ) -> None:
        super().__init__(name, input_column, side)
        tokenizer = read_tokenizer(vocab_file, f'tokenize_feature "{name}"')
        self.encoder = BytePairEncoder(tokenizer)
        self.num_embeddings = tokenizer.vocab_size
        self.embedding_dim = embedding_dim
        self.embedding_name = embedding_name or f"{name}_emb"
        self.pooling = pooling
        self.default_value = default_value
        self.options = [o for o in options or [] if o not in NOT_APPLIED]
        self.max_length = max_length

    @property
    def is_sparse(self) -> bool:
        return True

    def column_kind(self) -> str:
        return "string"

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """pyfg's text_normalizer options that easymatch applies."""
        if not self.options:
            return texts
        out = texts
        if _OPT.TEXT_SBC2DBC in self.options:
            out = _full_to_half_width(out)
        if _OPT.TEXT_LOWER2UPPER in self.options:
            out = tf.strings.upper(out, encoding="utf-8")
        if _OPT.TEXT_UPPER2LOWER in self.options:
            out = tf.strings.lower(out, encoding="utf-8")
        if _OPT.TEXT_REMOVE_SPACE in self.options:
            out = tf.strings.regex_replace(out, " ", "")
        if self.max_length:
            # Longer texts are left as they are (TextNormalizer.max_length).
            length = tf.strings.length(texts, unit="UTF8_CHAR")
            out = tf.where(length > self.max_length, texts, out)
        return out

    def transform(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        texts = columns[self.input_column]
        if self.default_value:
            texts = tf.where(texts == "", self.default_value, texts)
        return pad_ids(self.encoder(self.normalize(texts)))


def _full_to_half_width(texts: tf.Tensor) -> tf.Tensor:
    """U+FF01..U+FF5E → U+0021..U+007E, U+3000 → space (SBC → DBC)."""
    chars = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
    values = chars.flat_values
    full = (values >= 0xFF01) & (values <= 0xFF5E)
    values = tf.where(full, values - 0xFEE0, values)
    values = tf.where(values == 0x3000, 0x20, values)
    return tf.strings.unicode_encode(chars.with_flat_values(values), "UTF-8")


def build_tokenize_feature(
    info: FeatureInfo, fg_encoded: bool, separator: str | None
) -> EmbeddedFeature:
    """The feature of a tokenize_feature config."""
    proto: feature_pb2.TokenizeFeature = info.proto
    vocab_file = os.path.join(proto.asset_dir, proto.vocab_file)
    embedding_name = proto.embedding_name or f"{info.name}_emb"
    if fg_encoded:
        # FG_NONE inputs already hold the token ids.
        where = f'tokenize_feature "{info.name}"'
        size = read_tokenizer(vocab_file, where).vocab_size
        return IdFeature(
            info.name,
            info.input_columns[0],
            proto.embedding_dim,
            side=info.side,
            embedding_name=embedding_name,
            num_buckets=size,
            separator=separator or "\x03",
            pooling=proto.pooling,
            fg_encoded=True,
            fg_encoded_default_value=proto.fg_encoded_default_value,
        )
    return TokenizeFeature(
        info.name,
        info.input_columns[0],
        proto.embedding_dim,
        vocab_file,
        side=info.side,
        embedding_name=embedding_name,
        pooling=proto.pooling,
        default_value=proto.default_value,
        options=norm_options(proto),
        max_length=proto.text_normalizer.max_length,
    )
