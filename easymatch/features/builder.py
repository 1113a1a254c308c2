"""feature_configs → a FeatureSet of the features the model's groups use.

Names, input columns and sides come from `easymatch.config.iter_features`,
the one place that answers them for readers, validation and features.
"""

from __future__ import annotations

from easymatch.config import iter_features
from easymatch.config.features import FeatureInfo
from easymatch.errors import ConfigError
from easymatch.features.base import Feature
from easymatch.features.feature_set import FeatureSet
from easymatch.features.id_feature import IdFeature
from easymatch.features.raw_feature import RawFeature
from easymatch.features.sequence_feature import (
    SequenceIdFeature,
    SequenceRawFeature,
)
from easymatch.features.tokenize_feature import build_tokenize_feature
from easymatch.protos import data_pb2, feature_pb2
from easymatch.specs.derive import group_specs, used_feature_names


def build_feature_set(config, names: set[str] | None = None) -> FeatureSet:
    """Features named in `names` (default: those the feature groups use)."""
    if names is None:
        names = used_feature_names(group_specs(config))
    data = config.data_config
    fg_encoded = data.fg_mode == data_pb2.FG_NONE
    separator = data.fg_encoded_multival_sep if fg_encoded else None
    return FeatureSet(
        [
            _build(info, fg_encoded, separator)
            for info in iter_features(config)
            if info.name in names
        ]
    )


def _build(info: FeatureInfo, fg_encoded: bool, separator: str | None):
    try:
        if info.is_id:
            return _id_feature(info, fg_encoded, separator)
        if isinstance(info.proto, feature_pb2.TokenizeFeature):
            return build_tokenize_feature(info, fg_encoded, separator)
        return _raw_feature(info, fg_encoded, separator)
    except ValueError as error:
        raise ConfigError(f"{info.path}: {error}") from None


def _id_feature(info: FeatureInfo, fg_encoded: bool, separator: str | None):
    # init_fn and trainable are refused at load (config/field_classes.py).
    proto = info.proto
    kwargs = dict(
        side=info.side,
        embedding_name=proto.embedding_name or f"{info.name}_emb",
        hash_bucket_size=proto.hash_bucket_size,
        num_buckets=proto.num_buckets,
        vocab_list=list(proto.vocab_list),
        vocab_dict=dict(proto.vocab_dict),
        default_bucketize_value=(
            proto.default_bucketize_value
            if proto.HasField("default_bucketize_value")
            else None
        ),
        default_value=proto.default_value,
        separator=separator or proto.separator,
        pooling=proto.pooling,
        fg_encoded=fg_encoded,
        fg_encoded_default_value=proto.fg_encoded_default_value,
        weighted=proto.weighted,
    )
    column = info.input_columns[0]
    if info.is_sequence:
        return SequenceIdFeature(
            info.name,
            column,
            proto.embedding_dim,
            sequence_length=info.sequence_length,
            sequence_delim=info.sequence_delim,
            **kwargs,
        )
    return IdFeature(info.name, column, proto.embedding_dim, **kwargs)


def _raw_feature(
    info: FeatureInfo, fg_encoded: bool, separator: str | None
) -> Feature:
    proto = info.proto
    column = info.input_columns[0]
    embedding_name = proto.embedding_name or f"{info.name}_emb"
    sequence = (
        {
            "sequence_length": info.sequence_length,
            "sequence_delim": info.sequence_delim,
        }
        if info.is_sequence
        else {}
    )
    if fg_encoded and proto.boundaries:
        # FG_NONE inputs already hold the bucket ids.
        id_class = SequenceIdFeature if info.is_sequence else IdFeature
        return id_class(
            info.name,
            column,
            proto.embedding_dim,
            side=info.side,
            embedding_name=embedding_name,
            num_buckets=len(proto.boundaries) + 1,
            separator=separator,
            pooling=proto.pooling,
            fg_encoded=True,
            fg_encoded_default_value=proto.fg_encoded_default_value,
            **sequence,
        )
    raw_class = SequenceRawFeature if info.is_sequence else RawFeature
    return raw_class(
        info.name,
        column,
        side=info.side,
        value_dim=proto.value_dim,
        boundaries=list(proto.boundaries),
        embedding_dim=proto.embedding_dim,
        embedding_name=embedding_name,
        default_value=proto.default_value,
        separator=separator or proto.separator,
        # FG_NONE values were normalized when they were generated.
        normalizer="" if fg_encoded else proto.normalizer,
        pooling=proto.pooling,
        # TorchEasyRec has no dense embedding inside sequences.
        **(sequence or {"mlp": proto.HasField("mlp")}),
    )
