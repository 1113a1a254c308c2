"""Semantic checks of a parsed pipeline config (docs/config.md).

Each check raises on the first problem, naming the field and its line, so
a config fails at load time instead of deep inside training or export.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.message import Message

from easymatch.config.features import sampler_config
from easymatch.config.field_classes import check_field_classes
from easymatch.config.locate import is_map
from easymatch.config.report import Locator, Reporter
from easymatch.config.validate_features import validate_features
from easymatch.config.validate_model import validate_model
from easymatch.config.validate_train import validate_train
from easymatch.protos import (
    data_pb2,
    export_pb2,
    model_pb2,
    pipeline_pb2,
)

# Required fields whose absence TorchEasyRec tolerates because its code
# fills them in (tzrec/modules/embedding.py), checked by validate_model.
_DEFAULTED_REQUIRED = {
    ("easymatch.protos.PoolingEncoder", "input"),
    # GraphLearn's "full" strategy ignores the count: all of a user's
    # hard negatives (data/samplers/builder.py).
    ("easymatch.protos.HardNegativeSampler", "num_hard_sample"),
    ("easymatch.protos.HardNegativeSamplerV2", "num_hard_sample"),
    # Given by --train_input_path too; train_eval checks it.
    ("easymatch.protos.EasyRecConfig", "train_input_path"),
}
# TorchEasyRec never enforces `required`: under FG_NONE a feature's input
# column is its name (tzrec/features/feature.py `inputs`), so a missing
# expression is only a problem when FG reads the expression.
_FEATURES = ("IdFeature", "RawFeature", "TokenizeFeature")
_EXPRESSION = {(f"easymatch.protos.{m}", "expression") for m in _FEATURES}


def check_config(config: pipeline_pb2.EasyRecConfig, locator: Locator) -> None:
    """Fills in implied values, then validates; raises ConfigError."""
    normalize(config)
    validate(config, Reporter(locator))


def normalize(config: pipeline_pb2.EasyRecConfig) -> None:
    """Makes the values TorchEasyRec implies explicit, so no reader of the
    config needs to know the rules (SPEC §2.4, §3.2)."""
    for name in ("train_input_path", "eval_input_path"):
        if not config.HasField(name):
            setattr(config, name, "")
    export = config.export_config
    if export.HasField("metric_bigger"):
        export.metric_larger_is_better = export.metric_bigger
    for group in config.model_config.feature_groups:
        sequence_groups = group.sequence_groups
        if len(sequence_groups) != 1:
            continue
        if not sequence_groups[0].HasField("group_name"):
            sequence_groups[0].group_name = group.group_name
        for encoder in group.sequence_encoders:
            pooling = encoder.pooling_encoder
            if encoder.HasField("pooling_encoder") and not pooling.input:
                pooling.input = sequence_groups[0].group_name


def validate(config: pipeline_pb2.EasyRecConfig, report: Reporter) -> None:
    check_field_classes(config, report)
    fg_none = config.data_config.fg_mode == data_pb2.FG_NONE
    exempt = _DEFAULTED_REQUIRED | (_EXPRESSION if fg_none else set())
    for path in _missing_required(config, "", exempt):
        what = "required field missing"
        if path.endswith(".expression"):
            what += " (the input column; only FG_NONE reads the feature name)"
        report.fail(path, what)
    for name in ("train_config", "data_config", "model_config"):
        if not config.HasField(name):
            report.fail(name, "required field missing")
    validate_train(config.train_config, report)
    _validate_export(config, report)
    _validate_data(config.data_config, report)
    features = validate_features(config, report)
    validate_model(config, features, report)


def _missing_required(
    message: Message, prefix: str, exempt: set[tuple[str, str]]
) -> Iterator[str]:
    for fd in message.DESCRIPTOR.fields:
        path = prefix + fd.name
        if fd.is_required and not message.HasField(fd.name):
            key = (message.DESCRIPTOR.full_name, fd.name)
            # A default makes the field usable; TorchEasyRec reads it.
            if not fd.has_default_value and key not in exempt:
                yield path
        if fd.message_type is None or is_map(fd):
            continue
        if fd.is_repeated:
            for i, sub in enumerate(getattr(message, fd.name)):
                yield from _missing_required(sub, f"{path}[{i}].", exempt)
        elif message.HasField(fd.name):
            yield from _missing_required(
                getattr(message, fd.name), path + ".", exempt
            )


def _validate_export(
    config: pipeline_pb2.EasyRecConfig, report: Reporter
) -> None:
    export: export_pb2.ExportConfig = config.export_config
    path = "export_config"
    precision = config.train_config.mixed_precision
    # Unset means "as trained": a BF16 config need not repeat itself.
    if export.mixed_precision and export.mixed_precision != precision:
        report.fail(
            f"{path}.mixed_precision",
            f'"{export.mixed_precision}" differs from train_config.'
            f'mixed_precision "{precision}"; the towers export with the '
            "precision they trained in",
        )
    if export.exporter_type not in ("latest", "best"):
        report.fail(
            f"{path}.exporter_type",
            f'"{export.exporter_type}" is not supported; '
            'use "latest" or "best"',
        )
    if not 0 < export.index_target_recall <= 1:
        report.fail(
            f"{path}.index_target_recall",
            f"{export.index_target_recall:g} is not in (0, 1]",
        )
    if export.retrieval_top_k <= 0:
        report.fail(
            f"{path}.retrieval_top_k",
            f"{export.retrieval_top_k} is not at least 1",
        )
    if export.exporter_type != "best":
        return
    if not export.HasField("best_exporter_metric"):
        report.fail(
            f"{path}.best_exporter_metric",
            'required with exporter_type "best", e.g. "recall@5"',
            at=f"{path}.exporter_type",
        )
    keys = eval_metric_keys(config.model_config)
    if export.best_exporter_metric not in keys:
        report.fail(
            f"{path}.best_exporter_metric",
            f'"{export.best_exporter_metric}" is not an eval metric; '
            f"use one of {', '.join(keys)}",
        )


def eval_metric_keys(model_config: model_pb2.ModelConfig) -> list[str]:
    """Keys of an eval result line (SPEC §3.7)."""
    keys = [f"recall@{m.recall_at_k.top_k}" for m in model_config.metrics]
    return [*dict.fromkeys(keys), "softmax_cross_entropy"]


def _validate_data(data: data_pb2.DataConfig, report: Reporter) -> None:
    path = "data_config"
    dataset = data.dataset_type
    if dataset not in (data_pb2.ParquetDataset, data_pb2.CsvDataset):
        report.fail(
            f"{path}.dataset_type",
            f"{data_pb2.DatasetType.Name(dataset)} is not supported; "
            "use ParquetDataset or CsvDataset",
        )
    if dataset == data_pb2.CsvDataset and not data.input_fields:
        report.fail(
            f"{path}.input_fields",
            "required with CsvDataset (the CSV columns, in file order)",
            at=f"{path}.dataset_type",
        )
    if data.fg_mode == data_pb2.FG_BUCKETIZE:
        report.fail(
            f"{path}.fg_mode",
            "FG_BUCKETIZE is not supported; use FG_NONE, FG_NORMAL or FG_DAG",
        )
    if data.HasField("fg_encoded"):
        # tzrec's config_util derives fg_mode from fg_encoded; SPEC §6.10
        # ignores it, so say what changes.
        mode = data_pb2.FgMode.Name(data.fg_mode)
        tzrec_mode = "FG_NONE" if data.fg_encoded else "FG_DAG"
        note = "" if tzrec_mode == mode else f"; TorchEasyRec uses {tzrec_mode}"
        report.warn(
            f"{path}.fg_encoded",
            f"deprecated and ignored, fg_mode is {mode}" + note,
        )
    if not data.label_fields:
        report.fail(f"{path}.label_fields", "at least one label field needed")
    if data.batch_size == 0:
        report.fail(f"{path}.batch_size", "must be > 0")
    if data.HasField("eval_batch_size") and data.eval_batch_size == 0:
        report.fail(f"{path}.eval_batch_size", "must be > 0")
    sampler = sampler_config(data)
    if sampler is None:
        return
    sampler_path = f"{path}.{data.WhichOneof('sampler')}"
    if sampler.num_sample == 0:
        report.fail(f"{sampler_path}.num_sample", "must be > 0")
    if not sampler.attr_fields:
        report.fail(
            f"{sampler_path}.attr_fields",
            "at least one item column needed (they make features item-side)",
        )
    if not sampler.attr_delimiter:
        report.fail(f"{sampler_path}.attr_delimiter", "must not be empty")
    if sampler.HasField("num_eval_sample") and sampler.num_eval_sample == 0:
        report.warn(
            f"{sampler_path}.num_eval_sample",
            "0 means num_sample is used for eval too "
            "(TorchEasyRec would sample no eval negatives)",
        )
