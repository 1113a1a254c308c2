"""Checks of model_config.feature_groups and their sequence encoders."""

from __future__ import annotations

from easymatch.config.features import FeatureInfo
from easymatch.config.report import Reporter
from easymatch.protos import model_pb2

_POOLING_TYPES = ("mean", "sum")


def validate_groups(
    model_config: model_pb2.ModelConfig,
    features: dict[str, FeatureInfo],
    has_sampler: bool,
    report: Reporter,
) -> dict[str, str]:
    """Checks the feature groups; returns each group's side."""
    sides: dict[str, str] = {}
    sequence_names: set[str] = set()
    for g, group in enumerate(model_config.feature_groups):
        path = f"model_config.feature_groups[{g}]"
        if group.group_name in sides:
            report.fail(
                f"{path}.group_name",
                f'duplicate group name "{group.group_name}"',
            )
        if group.group_type != model_pb2.DEEP:
            report.fail(
                f"{path}.group_type",
                f"{model_pb2.FeatureGroupType.Name(group.group_type)} groups "
                "are not supported; use DEEP",
            )
        members = []
        for k, name in enumerate(group.feature_names):
            where = f"{path}.feature_names[{k}]"
            info = _lookup(
                features, name, f"{path}.feature_names", where, report
            )
            if info.is_sequence:
                report.fail(
                    f"{path}.feature_names",
                    f'feature "{name}" is a sequence feature; list it in '
                    "sequence_groups",
                    at=where,
                )
            members.append((where, info))
        members += _validate_sequence_groups(
            path, group, features, sequence_names, report
        )
        if not members:
            report.fail(path, f'group "{group.group_name}" has no features')
        first_where, first = members[0]
        for where, info in members[1:]:
            if info.side != first.side:
                hint = (
                    " (item-side: an input column is in the sampler's "
                    "attr_fields)"
                    if has_sampler
                    else ' (item-side: expression "item:...")'
                )
                report.fail(
                    where.rsplit("[", 1)[0],
                    f'feature "{info.name}" is {info.side}-side but '
                    f'"{first.name}" is {first.side}-side; the features of '
                    f"a group must all be on one side{hint}",
                    at=where,
                )
        sides[group.group_name] = first.side
    return sides


def _lookup(
    features: dict[str, FeatureInfo],
    name: str,
    path: str,
    where: str,
    report: Reporter,
) -> FeatureInfo:
    if name not in features:
        report.fail(
            path,
            f'feature "{name}" is not defined in feature_configs',
            at=where,
        )
    return features[name]


def _validate_sequence_groups(
    path: str,
    group: model_pb2.FeatureGroupConfig,
    features: dict[str, FeatureInfo],
    sequence_names: set[str],
    report: Reporter,
) -> list[tuple[str, FeatureInfo]]:
    """Checks a group's sequence groups and encoders (SPEC §3.2)."""
    groups, encoders = group.sequence_groups, group.sequence_encoders
    if groups and not encoders:
        report.fail(
            f"{path}.sequence_groups",
            "sequence_groups without sequence_encoders",
        )
    if encoders and not groups:
        report.fail(
            f"{path}.sequence_encoders",
            "sequence_encoders without sequence_groups",
        )
    members = []
    local_names = []
    for s, sequence_group in enumerate(groups):
        seq_path = f"{path}.sequence_groups[{s}]"
        name = sequence_group.group_name
        if not sequence_group.HasField("group_name"):
            report.fail(
                f"{seq_path}.group_name",
                "required when a group has several sequence_groups",
            )
        if name in sequence_names:
            report.fail(
                f"{seq_path}.group_name", f'duplicate sequence group "{name}"'
            )
        sequence_names.add(name)
        local_names.append(name)
        if not sequence_group.feature_names:
            report.fail(seq_path, f'sequence group "{name}" has no features')
        sources = set()
        for k, feature in enumerate(sequence_group.feature_names):
            where = f"{seq_path}.feature_names[{k}]"
            names_path = f"{seq_path}.feature_names"
            info = _lookup(features, feature, names_path, where, report)
            if not info.is_sequence:
                report.fail(
                    names_path,
                    f'feature "{feature}" is not a sequence feature',
                    at=where,
                )
            sources.add(info.sequence_name)
            members.append((where, info))
        if len(sources) > 1:
            report.fail(
                f"{seq_path}.feature_names",
                "features of different sequences in one sequence group",
            )
    used = set()
    for e, encoder in enumerate(encoders):
        enc_path = f"{path}.sequence_encoders[{e}]"
        if not encoder.HasField("pooling_encoder"):
            report.fail(enc_path, "no encoder set; use pooling_encoder")
        pooling = encoder.pooling_encoder
        pooling_path = f"{enc_path}.pooling_encoder"
        if not pooling.input:
            report.fail(
                f"{pooling_path}.input",
                "required when a group has several sequence_groups",
            )
        if pooling.input not in local_names:
            report.fail(
                f"{pooling_path}.input",
                f'sequence group "{pooling.input}" is not defined in '
                f"{path}.sequence_groups",
            )
        if pooling.pooling_type not in _POOLING_TYPES:
            report.fail(
                f"{pooling_path}.pooling_type",
                f'"{pooling.pooling_type}" is not "mean" or "sum"',
            )
        if pooling.max_seq_length < 0:
            report.fail(f"{pooling_path}.max_seq_length", "must be >= 0")
        used.add(pooling.input)
    for s, name in enumerate(local_names):
        if name not in used:
            report.fail(
                f"{path}.sequence_groups[{s}]",
                f'sequence group "{name}" has no sequence encoder',
            )
    return members
