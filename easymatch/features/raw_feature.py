"""RawFeature: numeric values, optionally bucketized by boundaries."""

from __future__ import annotations

import math
from collections.abc import Sequence

import tensorflow as tf

from easymatch.features.base import EmbeddedFeature, split_tokens
from easymatch.features.checks import check, first_where, parse_numbers
from easymatch.specs.embedding import FeatureSpec


class RawFeature(EmbeddedFeature):
    """A dense [B, value_dim] value, or with `boundaries` sparse bucket ids.

    With `mlp` (TorchEasyRec's `mlp {}` dense embedding) the model projects
    the dense value to `embedding_dim` (EmbeddingGroup, `mlp_dim`).

    A bucket id is the number of boundaries b with b <= x (bisect_right),
    so a value on a boundary falls into the upper bucket.
    """

    def __init__(
        self,
        name: str,
        input_column: str,
        *,
        side: str = "user",
        value_dim: int = 1,
        boundaries: Sequence[float] = (),
        embedding_dim: int = 0,
        embedding_name: str = "",
        default_value: str = "0",
        separator: str = "\x1d",
        normalizer: str = "",
        pooling: str = "sum",
        mlp: bool = False,
    ) -> None:
        super().__init__(name, input_column, side)
        if list(boundaries) != sorted(boundaries):
            raise ValueError(f"raw_feature {name}: boundaries must be sorted")
        if boundaries and embedding_dim <= 0:
            raise ValueError(
                f"raw_feature {name}: boundaries need embedding_dim > 0"
            )
        if mlp and (boundaries or embedding_dim <= 0):
            raise ValueError(
                f"raw_feature {name}: mlp needs embedding_dim > 0 and no "
                "boundaries"
            )
        self.mlp = mlp
        self.value_dim = max(value_dim, 1)
        self.boundaries = [float(b) for b in boundaries]
        self.embedding_dim = embedding_dim
        self.embedding_name = embedding_name or f"{name}_emb"
        self.separator = separator
        self.pooling = pooling
        defaults = [float(v) for v in default_value.split(separator) if v]
        if len(defaults) not in (1, self.value_dim):
            raise ValueError(
                f"raw_feature {name}: default_value {default_value!r} must "
                f"hold 1 or value_dim={self.value_dim} values"
            )
        self.default_values = defaults * (self.value_dim // len(defaults))
        self._normalize = parse_normalizer(name, normalizer)

    @property
    def is_sparse(self) -> bool:
        return bool(self.boundaries)

    @property
    def num_embeddings(self) -> int:
        return len(self.boundaries) + 1

    def column_kind(self) -> str:
        return "float" if self.value_dim == 1 else "string"

    def values(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        """float32 [B, value_dim] after defaults and the normalizer."""
        column = columns[self.input_column]
        if column.dtype == tf.string:
            return self._normalize(self.parse_text(column))
        values = tf.cast(tf.reshape(column, [-1, 1]), tf.float32)
        values = tf.where(
            tf.math.is_nan(values),
            tf.constant([self.default_values], tf.float32),
            values,
        )
        return self._normalize(values)

    def parse_text(self, texts: tf.Tensor) -> tf.Tensor:
        """[N] texts of `value_dim` numbers → float32 [N, value_dim].

        An empty text takes the default; no normalizer is applied.
        """
        tokens = split_tokens(texts, self.separator)
        lengths = tokens.row_lengths()
        empty = lengths == 0
        subject = (
            f'feature "{self.feature_name}" (column "{self.input_column}")'
        )
        width = empty | (lengths == self.value_dim)
        width_check = check(
            tf.reduce_all(width),
            f"{subject}: expected {self.value_dim} values, got a row with {{}}",
            lambda: [first_where(lengths, ~width)],
        )
        with tf.control_dependencies([width_check]):
            parsed = tokens.with_flat_values(
                parse_numbers(tokens.flat_values, tf.float32, subject)
            )
        dense = parsed.to_tensor(0.0, shape=[None, self.value_dim])
        return tf.where(
            empty[:, None],
            tf.constant([self.default_values], tf.float32),
            dense,
        )

    def transform(self, columns: dict[str, tf.Tensor]) -> tf.Tensor:
        values = self.values(columns)
        if not self.boundaries:
            return values
        ids = tf.raw_ops.Bucketize(input=values, boundaries=self.boundaries)
        return tf.cast(ids, tf.int64)

    def spec(self) -> FeatureSpec:
        if not self.boundaries:
            return FeatureSpec.dense(
                self.feature_name,
                self.value_dim,
                self.embedding_dim if self.mlp else 0,
            )
        return super().spec()


def parse_normalizer(name: str, text: str):
    """FG's normalizer string → a function of a float32 tensor.

    `method=log10,threshold=t,default=d`: x > t ? log10(x) : d;
    `method=zscore,mean=m,standard_deviation=s`: (x - m) / s;
    `method=minmax,min=a,max=b`: (x - a) / (b - a).
    """
    if not text:
        return lambda x: x
    try:
        params = dict(part.split("=", 1) for part in text.split(","))
        method = params.pop("method")
        numbers = {key: float(value) for key, value in params.items()}
        if method == "log10":
            threshold = numbers.get("threshold", 1e-10)
            default = numbers.get("default", -10.0)
            return lambda x: tf.where(
                x > threshold,
                tf.math.log(tf.maximum(x, threshold)) / math.log(10.0),
                default,
            )
        if method == "zscore":
            mean, std = numbers["mean"], numbers["standard_deviation"]
            return lambda x: (x - mean) / std
        if method == "minmax":
            low, high = numbers["min"], numbers["max"]
            return lambda x: (x - low) / (high - low)
    except (KeyError, ValueError):
        pass
    raise ValueError(
        f"raw_feature {name}: unsupported normalizer {text!r} (supported: "
        "log10, zscore, minmax with their parameters)"
    )
