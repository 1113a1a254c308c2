"""The pipeline proto → specs, the one place data, models and export
read model_config and data_config from.

Features are the exception: each feature kind parses its own proto
message in `easymatch.features` (vocabularies, tokenizer files and
boundaries decide its table size), and `Feature.spec()` says what the
model reads of it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from easymatch.config.features import sampler_config
from easymatch.protos import data_pb2, simi_pb2
from easymatch.specs.data import DataSpec
from easymatch.specs.embedding import FeatureSpec
from easymatch.specs.groups import (
    GroupSpec,
    MlpSpec,
    SequenceEncoderSpec,
    SequenceGroupSpec,
    TowerSpec,
)
from easymatch.specs.model import ModelSpec, RunSpecs
from easymatch.specs.retrieval import (
    STREAMING,
    CandidateProbabilitySpec,
    RetrievalSpec,
)

DATASET_TYPES = {"ParquetDataset": "parquet", "CsvDataset": "csv"}
_STREAMING_FIELDS = (
    "num_buckets",
    "num_hashes",
    "alpha",
    "count_repeats",
    "warm_start",
)


def model_kind(config) -> str:
    """The `model` oneof's name: "dssm" or "dssm_v2"."""
    return config.model_config.WhichOneof("model")


def model_options(config):
    """The DSSM or DSSMV2 message (bench tools edit it in place)."""
    return getattr(config.model_config, model_kind(config))


def group_specs(config) -> tuple[GroupSpec, ...]:
    return tuple(_group(group) for group in config.model_config.feature_groups)


def _group(group) -> GroupSpec:
    sequence_groups = tuple(
        SequenceGroupSpec(
            sequence_group.group_name or group.group_name,
            tuple(sequence_group.feature_names),
        )
        for sequence_group in group.sequence_groups
    )
    encoders = tuple(
        SequenceEncoderSpec(
            encoder.pooling_encoder.input or sequence_groups[0].name,
            encoder.pooling_encoder.pooling_type,
            encoder.pooling_encoder.max_seq_length,
        )
        for encoder in group.sequence_encoders
    )
    return GroupSpec(
        group.group_name,
        tuple(group.feature_names),
        sequence_groups,
        encoders,
        group.embedding_name_suffix,
    )


def used_feature_names(groups: Iterable[GroupSpec]) -> set[str]:
    """The features the groups read: the ones a run builds."""
    return {name for group in groups for name in group.all_feature_names}


def _tower(tower) -> TowerSpec:
    if not tower.HasField("mlp"):
        return TowerSpec(tower.input)
    mlp = tower.mlp
    return TowerSpec(
        tower.input,
        MlpSpec(
            tuple(mlp.hidden_units),
            mlp.activation,
            mlp.use_bn,
            mlp.use_ln,
            mlp.bias,
            tuple(mlp.dropout_ratio),
        ),
    )


def _candidate_probability(options) -> CandidateProbabilitySpec:
    """Unset: train_counts, the best option measured
    (docs/retrieval_eval.md)."""
    option = options.candidate_probability
    if option.WhichOneof("source") != STREAMING:
        return CandidateProbabilitySpec()
    streaming = option.streaming
    return CandidateProbabilitySpec(
        STREAMING,
        tuple((name, getattr(streaming, name)) for name in _STREAMING_FIELDS),
    )


def retrieval_spec(config) -> RetrievalSpec:
    options = model_options(config)
    model_config = config.model_config
    sampler = sampler_config(config.data_config)
    spec = RetrievalSpec(
        similarity=simi_pb2.Similarity.Name(options.similarity),
        temperature=options.temperature,
        in_batch_negative=options.in_batch_negative,
        mixed_negatives=options.mixed_negatives,
        logq_correction=options.logq_correction,
        remove_accidental_hits=options.remove_accidental_hits,
        candidate_probability=_candidate_probability(options),
        recall_top_ks=tuple(m.recall_at_k.top_k for m in model_config.metrics),
        train_recall_top_ks=tuple(
            m.recall_at_k.top_k for m in model_config.train_metrics
        ),
        train_recall_decays=tuple(
            (m.decay_rate, m.decay_step) for m in model_config.train_metrics
        ),
    )
    if not spec.needs_item_ids:
        return spec
    # Validation makes sure one of the two is set.
    column = options.item_id_field or sampler.item_id_field
    return dataclasses.replace(spec, item_id_column=column)


def data_spec(config, retrieval: RetrievalSpec | None = None) -> DataSpec:
    """`retrieval`: the config's, when the caller has it."""
    retrieval = retrieval or retrieval_spec(config)
    data = config.data_config
    sampler = sampler_config(data)
    id_columns = []
    if sampler is not None:
        id_columns.append(sampler.item_id_field)
        if hasattr(sampler, "user_id_field"):
            id_columns.append(sampler.user_id_field)
    if retrieval.item_id_column is not None:
        id_columns.append(retrieval.item_id_column)
    return DataSpec(
        dataset_type=DATASET_TYPES[
            data_pb2.DatasetType.Name(data.dataset_type)
        ],
        label_field=data.label_fields[0],
        sample_weight_field=(
            data.sample_weight_fields[0] if data.sample_weight_fields else None
        ),
        batch_size=data.batch_size,
        eval_batch_size=data.eval_batch_size,
        drop_remainder=data.drop_remainder,
        shuffle=data.shuffle,
        shuffle_buffer_size=data.shuffle_buffer_size,
        num_workers=max(data.num_workers, 1),
        csv_fields=tuple(
            (field.input_name, data_pb2.FieldType.Name(field.input_type))
            for field in data.input_fields
        ),
        csv_delimiter=data.delimiter,
        csv_with_header=data.with_header,
        sampler_item_id_field=(
            sampler.item_id_field if sampler is not None else None
        ),
        id_columns=tuple(dict.fromkeys(id_columns)),
    )


def model_spec(config, features: Sequence[FeatureSpec]) -> ModelSpec:
    """`features`: the feature set's specs (`FeatureSet.specs()`)."""
    options = model_options(config)
    model_config = config.model_config
    clipping = config.train_config.grad_clipping
    return ModelSpec(
        kind=model_kind(config),
        features=tuple(features),
        groups=group_specs(config),
        user_tower=_tower(options.user_tower),
        item_tower=_tower(options.item_tower),
        output_dim=options.output_dim,
        retrieval=retrieval_spec(config),
        variational_dropout=(
            model_config.variational_dropout.regularization_lambda
            if model_config.HasField("variational_dropout")
            else None
        ),
        mixed_precision=config.train_config.mixed_precision,
        gradient_clipping=(clipping.clipping_type, clipping.max_gradient),
    )


def derive_specs(config, features: Sequence[FeatureSpec]) -> RunSpecs:
    model = model_spec(config, features)
    return RunSpecs(model, data_spec(config, model.retrieval))
