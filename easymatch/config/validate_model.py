"""Checks of model_config: model, towers, losses, metrics."""

from __future__ import annotations

from easymatch.config.features import FeatureInfo, sampler_config
from easymatch.config.report import Reporter
from easymatch.config.validate_groups import validate_groups
from easymatch.protos import (
    match_model_pb2,
    model_pb2,
    module_pb2,
    pipeline_pb2,
    simi_pb2,
)
from easymatch.side_inputs import needs_item_ids

_ACTIVATIONS = (
    "nn.ReLU",
    "nn.Sigmoid",
    "nn.Tanh",
    "nn.LeakyReLU",
    "nn.GELU",
    "nn.SiLU",
)


def validate_model(
    config: pipeline_pb2.EasyRecConfig,
    features: dict[str, FeatureInfo],
    report: Reporter,
) -> None:
    model_config = config.model_config
    kind = model_config.WhichOneof("model")
    if kind is None:
        report.fail("model_config", "no model set; use dssm or dssm_v2")
    has_sampler = sampler_config(config.data_config) is not None
    sides = validate_groups(model_config, features, has_sampler, report)
    model = getattr(model_config, kind)
    path = f"model_config.{kind}"
    for tower_name, side in (("user_tower", "user"), ("item_tower", "item")):
        tower = getattr(model, tower_name)
        tower_path = f"{path}.{tower_name}"
        if tower.input not in sides:
            report.fail(
                f"{tower_path}.input",
                f'group "{tower.input}" is not defined in '
                "model_config.feature_groups",
            )
        if has_sampler and sides[tower.input] != side:
            report.fail(
                f"{tower_path}.input",
                f'group "{tower.input}" is {sides[tower.input]}-side; the '
                f"{tower_name} needs {side}-side features (item-side: an "
                "input column is in the sampler's attr_fields)",
            )
        if tower.HasField("mlp"):
            _validate_mlp(f"{tower_path}.mlp", tower.mlp, report)
    if model.similarity == simi_pb2.EUCLID:
        report.fail(
            f"{path}.similarity",
            "EUCLID is not supported (TorchEasyRec computes it as an inner "
            "product); use INNER_PRODUCT or COSINE",
        )
    if not model.temperature > 0:
        report.fail(f"{path}.temperature", "must be > 0")
    if not has_sampler and not model.in_batch_negative:
        report.fail(
            f"{path}.in_batch_negative",
            "must be true without a sampler in data_config, "
            "otherwise there are no negatives",
        )
    _validate_negatives(config, model, path, report)
    _validate_candidate_probability(model, path, report)
    if kind == "dssm_v2" and not config.data_config.force_base_data_group:
        report.fail(
            "data_config.force_base_data_group", "must be true for dssm_v2"
        )
    _validate_heads(model_config, report)


def _validate_negatives(
    config: pipeline_pb2.EasyRecConfig,
    model: match_model_pb2.DSSM | match_model_pb2.DSSMV2,
    path: str,
    report: Reporter,
) -> None:
    """easymatch's own options: mixed negatives and what needs item ids."""
    sampler = sampler_config(config.data_config)
    if model.mixed_negatives and sampler is None:
        report.fail(
            f"{path}.mixed_negatives",
            "needs a sampler in data_config: it adds the sampled negatives "
            "to the in-batch ones",
        )
    if model.mixed_negatives and model.in_batch_negative:
        report.fail(
            f"{path}.mixed_negatives",
            "cannot be combined with in_batch_negative, which already "
            "scores every item row (TorchEasyRec)",
        )
    needs_ids = needs_item_ids(
        in_batch_negative=model.in_batch_negative,
        mixed_negatives=model.mixed_negatives,
        logq_correction=model.logq_correction,
        remove_accidental_hits=model.remove_accidental_hits,
    )
    field = f"{path}.item_id_field"
    if not model.HasField("item_id_field"):
        if needs_ids and sampler is None:
            report.fail(
                field,
                "must name the item id column: remove_accidental_hits and "
                "logq_correction of in-batch negatives compare item ids",
            )
        return
    if not model.item_id_field:
        report.fail(field, "must not be empty")
    if sampler is not None and model.item_id_field != sampler.item_id_field:
        report.fail(
            field,
            f'"{model.item_id_field}" differs from the sampler\'s '
            f'item_id_field "{sampler.item_id_field}"; omit it to use '
            "the sampler's",
        )
    if not needs_ids:
        report.warn(
            field,
            "has no effect without remove_accidental_hits or "
            "logq_correction of in-batch negatives",
        )


def _validate_candidate_probability(
    model: match_model_pb2.DSSM | match_model_pb2.DSSMV2,
    path: str,
    report: Reporter,
) -> None:
    """easymatch's candidate_probability (FrequencyEstimator's bounds)."""
    if not model.HasField("candidate_probability"):
        return
    path = f"{path}.candidate_probability"
    if not (
        model.logq_correction
        and (model.in_batch_negative or model.mixed_negatives)
    ):
        report.warn(
            path,
            "has no effect without logq_correction of in-batch or mixed "
            "negatives (sampled negatives use the sampler's weights)",
        )
    option = model.candidate_probability
    if option.WhichOneof("source") != "streaming":
        return
    streaming, path = option.streaming, f"{path}.streaming"
    buckets = streaming.num_buckets
    bits = buckets.bit_length() - 1
    if buckets < 2 or buckets != 1 << bits:
        report.fail(
            f"{path}.num_buckets", f"must be a power of two >= 2, got {buckets}"
        )
    elif not 1 <= streaming.num_hashes * bits <= 63:
        report.fail(
            f"{path}.num_hashes",
            f"num_hashes * log2(num_buckets) = {streaming.num_hashes} * "
            f"{bits} must be in [1, 63] (the hashes slice 63-bit id "
            "fingerprints)",
        )
    if not 0 < streaming.alpha <= 1:
        report.fail(
            f"{path}.alpha", f"must be in (0, 1], got {streaming.alpha}"
        )


def _validate_mlp(path: str, mlp: module_pb2.MLP, report: Reporter) -> None:
    if any(units == 0 for units in mlp.hidden_units):
        report.fail(f"{path}.hidden_units", "must be > 0")
    layers, ratios = len(mlp.hidden_units), len(mlp.dropout_ratio)
    if ratios not in (0, 1, layers):
        report.fail(
            f"{path}.dropout_ratio",
            f"has {ratios} values; expected 0, 1 or {layers} "
            "(one per hidden layer)",
        )
    if any(not 0 <= ratio < 1 for ratio in mlp.dropout_ratio):
        report.fail(f"{path}.dropout_ratio", "values must be in [0, 1)")
    if mlp.use_bn and mlp.use_ln:
        report.fail(f"{path}.use_ln", "use_bn and use_ln cannot both be true")
    activation = mlp.activation.split("(", 1)[0].strip()
    if activation and activation not in _ACTIVATIONS:
        report.fail(
            f"{path}.activation",
            f'"{mlp.activation}" is not supported; use "" or one of '
            + ", ".join(_ACTIVATIONS),
        )


def _validate_heads(
    model_config: model_pb2.ModelConfig, report: Reporter
) -> None:
    """Losses, metrics and variational dropout (SPEC §3.5, §3.7, §6)."""
    losses = model_config.losses
    if len(losses) != 1:
        report.fail(
            "model_config.losses",
            "expected exactly one loss, softmax_cross_entropy; "
            f"got {len(losses)}",
            at="model_config.losses[1]",
        )
    if not losses[0].HasField("softmax_cross_entropy"):
        report.fail(
            "model_config.losses[0]",
            "no loss set; use softmax_cross_entropy {}",
        )
    if losses[0].softmax_cross_entropy.label_smoothing != 0:
        report.fail(
            "model_config.losses[0].softmax_cross_entropy.label_smoothing",
            "must be 0 (TorchEasyRec's match models ignore it)",
        )
    for name in ("metrics", "train_metrics"):
        for i, metric in enumerate(getattr(model_config, name)):
            path = f"model_config.{name}[{i}]"
            if not metric.HasField("recall_at_k"):
                report.fail(path, "no metric set; use recall_at_k")
            if metric.recall_at_k.top_k == 0:
                report.fail(f"{path}.recall_at_k.top_k", "must be > 0")
    for i, metric in enumerate(model_config.train_metrics):
        path = f"model_config.train_metrics[{i}]"
        if not 0 <= metric.decay_rate <= 1:
            report.fail(f"{path}.decay_rate", "must be in [0, 1]")
        if metric.decay_step == 0:
            report.fail(f"{path}.decay_step", "must be > 0")
    if model_config.HasField("variational_dropout"):
        dropout = model_config.variational_dropout
        path = "model_config.variational_dropout"
        if dropout.regularization_lambda < 0:
            report.fail(f"{path}.regularization_lambda", "must be >= 0")
        if dropout.embedding_wise_variational_dropout:
            report.warn(
                f"{path}.embedding_wise_variational_dropout",
                "has no effect (as in TorchEasyRec); "
                "feature-wise dropout is used",
            )
