"""Feature names, sides and input columns, derived as TorchEasyRec does.

The readers, the feature transforms and the validation all need the same
answer to "which column does feature X read, and is it user- or
item-side", so it is computed here once (tzrec/features/feature.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from google.protobuf.message import Message

from easymatch.protos import data_pb2, feature_pb2, pipeline_pb2

# TorchEasyRec joins a grouped sequence's name and its sub-feature's name
# (and input column) with this.
SEQUENCE_JOIN = "__"


@dataclass(frozen=True, eq=False)
class FeatureInfo:
    """One feature as the model sees it.

    Unpacks as the 4-tuple `(name, side, input_columns, proto)`.
    """

    name: str
    # "user" or "item"
    side: str
    input_columns: tuple[str, ...]
    # The IdFeature, RawFeature or TokenizeFeature message.
    proto: (
        feature_pb2.IdFeature
        | feature_pb2.RawFeature
        | feature_pb2.TokenizeFeature
    ) = field(repr=False)
    # Config path of `proto`, e.g. "feature_configs[3].id_feature".
    path: str
    is_sequence: bool = False
    # Set for sub-features of a `sequence_feature` only.
    sequence_name: str | None = None
    # For sequence features: from the sequence_feature for sub-features,
    # from the feature itself for standalone sequence_*_feature.
    sequence_length: int = 0
    sequence_delim: str = ";"

    def __iter__(self) -> Iterator:
        return iter((self.name, self.side, self.input_columns, self.proto))

    @property
    def is_id(self) -> bool:
        return isinstance(self.proto, feature_pb2.IdFeature)


def feature_name(
    feature_config: feature_pb2.FeatureConfig | feature_pb2.SeqFeatureConfig,
) -> str:
    """The feature's own name; a sequence_feature's `sequence_name`."""
    kind = feature_config.WhichOneof("feature")
    if kind is None:
        raise ValueError("feature config has no feature type set")
    inner = getattr(feature_config, kind)
    if kind == "sequence_feature":
        return inner.sequence_name
    return inner.feature_name


def sampler_config(data_config: data_pb2.DataConfig) -> Message | None:
    """The configured negative sampler message, or None."""
    kind = data_config.WhichOneof("sampler")
    return getattr(data_config, kind) if kind else None


def expression_side_and_column(expression: str) -> tuple[str, str]:
    """ "user:user_id" → ("user", "user_id")."""
    side, _, column = expression.partition(":")
    return side, column


def iter_features(config: pipeline_pb2.EasyRecConfig) -> Iterator[FeatureInfo]:
    """Every feature in config order, sequence sub-features expanded.

    Input columns: with fg_mode FG_NONE the column is the feature's full
    name (the data already holds generated features, as in TorchEasyRec);
    otherwise the expression's column, prefixed with "<sequence_name>__"
    for sequence sub-features.

    Side: with a sampler, a feature is item-side iff one of its input
    columns is in the sampler's attr_fields (what TorchEasyRec uses to pick
    the negative data group). Without a sampler, sub-features of a
    sequence_feature are user-side and other features are item-side iff
    their expression starts with "item:".
    """
    data_config = config.data_config
    sampler = sampler_config(data_config)
    attr_fields = set(sampler.attr_fields) if sampler is not None else None
    encoded = data_config.fg_mode == data_pb2.FG_NONE
    for i, fc in enumerate(config.feature_configs):
        kind = fc.WhichOneof("feature")
        if kind is None:
            continue
        path = f"feature_configs[{i}].{kind}"
        inner = getattr(fc, kind)
        if kind != "sequence_feature":
            sequence = kind.startswith("sequence_")
            yield _info(
                inner,
                path,
                encoded,
                attr_fields,
                is_sequence=sequence,
                sequence_length=inner.sequence_length if sequence else 0,
                sequence_delim=inner.sequence_delim,
            )
            continue
        for j, sub in enumerate(inner.features):
            sub_kind = sub.WhichOneof("feature")
            if sub_kind is None:
                continue
            yield _info(
                getattr(sub, sub_kind),
                f"{path}.features[{j}].{sub_kind}",
                encoded,
                attr_fields,
                is_sequence=True,
                sequence_name=inner.sequence_name,
                sequence_length=inner.sequence_length,
                sequence_delim=inner.sequence_delim,
            )


def _info(
    proto: feature_pb2.IdFeature | feature_pb2.RawFeature,
    path: str,
    encoded: bool,
    attr_fields: set[str] | None,
    *,
    is_sequence: bool,
    sequence_length: int,
    sequence_delim: str,
    sequence_name: str | None = None,
) -> FeatureInfo:
    prefix = f"{sequence_name}{SEQUENCE_JOIN}" if sequence_name else ""
    name = prefix + proto.feature_name
    expression_side, column = expression_side_and_column(proto.expression)
    columns = (name,) if encoded else (prefix + column,)
    if attr_fields is not None:
        side = "item" if attr_fields.intersection(columns) else "user"
    elif sequence_name:
        side = "user"
    else:
        side = "item" if expression_side == "item" else "user"
    return FeatureInfo(
        name,
        side,
        columns,
        proto,
        path,
        is_sequence=is_sequence,
        sequence_name=sequence_name,
        sequence_length=sequence_length,
        sequence_delim=sequence_delim,
    )
