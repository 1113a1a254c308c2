"""Checks of feature_configs (SPEC §2.7, §3.1)."""

from __future__ import annotations

from easymatch.config.features import (
    FeatureInfo,
    expression_side_and_column,
    iter_features,
)
from easymatch.config.report import Reporter
from easymatch.config.validate_tokenize import validate_tokenize
from easymatch.protos import feature_pb2, pipeline_pb2

_SIDES = ("user", "item", "context")
_POOLINGS = ("sum", "mean")
_NORMALIZER_KEYS = {
    "log10": {"threshold", "default"},
    "zscore": {"mean", "standard_deviation"},
    "minmax": {"min", "max"},
}


def validate_features(
    config: pipeline_pb2.EasyRecConfig, report: Reporter
) -> dict[str, FeatureInfo]:
    """Checks every feature; returns them by full name."""
    for i, feature_config in enumerate(config.feature_configs):
        path = f"feature_configs[{i}]"
        kind = feature_config.WhichOneof("feature")
        if kind is None:
            report.fail(path, "no feature type set")
        if kind == "sequence_feature":
            _validate_sequence(
                f"{path}.sequence_feature",
                feature_config.sequence_feature,
                report,
            )
    features: dict[str, FeatureInfo] = {}
    for info in iter_features(config):
        _validate_feature(info, report)
        if info.name in features:
            report.fail(
                f"{info.path}.feature_name",
                f'duplicate feature name "{info.name}"',
            )
        features[info.name] = info
    return features


def _validate_sequence(
    path: str, sequence: feature_pb2.SequenceFeature, report: Reporter
) -> None:
    if sequence.sequence_length == 0:
        report.fail(f"{path}.sequence_length", "must be > 0")
    if not sequence.sequence_delim:
        report.fail(f"{path}.sequence_delim", "must not be empty")
    if not sequence.features:
        report.fail(path, "has no features")
    for j, sub in enumerate(sequence.features):
        if sub.WhichOneof("feature") is None:
            report.fail(f"{path}.features[{j}]", "no feature type set")


def _validate_feature(info: FeatureInfo, report: Reporter) -> None:
    path, feature = info.path, info.proto
    side, column = expression_side_and_column(feature.expression)
    # Without an expression (FG_NONE) the column is the feature's name.
    if feature.HasField("expression") and (side not in _SIDES or not column):
        report.fail(
            f"{path}.expression",
            f'expected "<side>:<column>" with side user, item or context, '
            f'got "{feature.expression}"',
        )
    if feature.pooling not in _POOLINGS:
        report.fail(
            f"{path}.pooling", f'"{feature.pooling}" is not "sum" or "mean"'
        )
    if info.is_sequence and info.sequence_name is None:
        if info.sequence_length == 0:
            report.fail(f"{path}.sequence_length", "must be > 0")
        if not info.sequence_delim:
            report.fail(f"{path}.sequence_delim", "must not be empty")
    if isinstance(feature, feature_pb2.IdFeature):
        _validate_id(path, feature, report)
    elif isinstance(feature, feature_pb2.TokenizeFeature):
        validate_tokenize(path, feature, report)
    else:
        _validate_raw(path, feature, report)
        if info.is_sequence and feature.HasField("mlp"):
            # tzrec RawFeature._dense_emb_type: None inside sequences.
            report.warn(
                f"{path}.mlp",
                "no effect inside a sequence, as in TorchEasyRec: the "
                "sequence carries the dense value",
            )


def id_table_size(feature: feature_pb2.IdFeature) -> int | None:
    """Embedding rows of an id feature (SPEC §3.1); None: no size rule."""
    if feature.HasField("hash_bucket_size"):
        return feature.hash_bucket_size
    if feature.HasField("num_buckets"):
        return feature.num_buckets
    if feature.vocab_list:
        extra = 0 if feature.HasField("default_bucketize_value") else 2
        return len(feature.vocab_list) + extra
    if feature.vocab_dict:
        return max(feature.vocab_dict.values()) + 1
    return None


def _validate_id(
    path: str, feature: feature_pb2.IdFeature, report: Reporter
) -> None:
    if feature.embedding_dim == 0:
        report.fail(f"{path}.embedding_dim", "must be > 0")
    size = id_table_size(feature)
    if size is None:
        report.fail(
            path,
            f'feature "{feature.feature_name}" needs hash_bucket_size, '
            "num_buckets, vocab_list or vocab_dict",
        )
    for name in ("hash_bucket_size", "num_buckets"):
        if feature.HasField(name) and getattr(feature, name) == 0:
            report.fail(f"{path}.{name}", "must be > 0")
    vocab = feature.vocab_list or feature.vocab_dict
    uses_vocab = not (
        feature.HasField("hash_bucket_size") or feature.HasField("num_buckets")
    )
    if uses_vocab and vocab and feature.HasField("default_bucketize_value"):
        if feature.default_bucketize_value >= size:
            report.fail(
                f"{path}.default_bucketize_value",
                f"must be < the table size {size}",
            )


def _validate_raw(
    path: str, feature: feature_pb2.RawFeature, report: Reporter
) -> None:
    if feature.value_dim == 0:
        report.fail(f"{path}.value_dim", "must be > 0")
    bounds = list(feature.boundaries)
    if any(a >= b for a, b in zip(bounds, bounds[1:], strict=False)):
        report.fail(f"{path}.boundaries", "must be strictly increasing")
    if bounds and feature.embedding_dim == 0:
        report.fail(f"{path}.embedding_dim", "must be > 0 with boundaries")
    if feature.HasField("mlp") and bounds:
        report.fail(f"{path}.mlp", "set either mlp or boundaries")
    if feature.HasField("mlp") and feature.embedding_dim == 0:
        report.fail(f"{path}.embedding_dim", "must be > 0 with mlp")
    if feature.HasField("normalizer"):
        problem = normalizer_problem(feature.normalizer)
        if problem:
            report.fail(f"{path}.normalizer", problem)


def normalizer_problem(text: str) -> str | None:
    """What is wrong with a normalizer string, or None if it is valid."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            return f'expected comma-separated key=value pairs, got "{text}"'
        values[key.strip()] = value.strip()
    method = values.pop("method", "")
    if method not in _NORMALIZER_KEYS:
        return f'method must be log10, zscore or minmax, got "{method}"'
    allowed = _NORMALIZER_KEYS[method]
    for key, value in values.items():
        if key not in allowed:
            return f'"{key}" is not a {method} parameter; use ' + " or ".join(
                sorted(allowed)
            )
        try:
            float(value)
        except ValueError:
            return f'{key}: "{value}" is not a number'
    return None
