"""model_config → model constructor arguments, and the model itself."""

from __future__ import annotations

from easymatch.features import FeatureSet
from easymatch.models.match_model import MatchModel
from easymatch.models.registry import model_class


def mlp_kwargs(mlp) -> dict:
    return {
        "hidden_units": list(mlp.hidden_units),
        "activation": mlp.activation,
        "use_bn": mlp.use_bn,
        "use_ln": mlp.use_ln,
        "bias": mlp.bias,
        "dropout_ratio": list(mlp.dropout_ratio),
    }


def group_kwargs(group) -> dict:
    sequence_groups = [
        {
            "name": sequence_group.group_name or group.group_name,
            "feature_names": list(sequence_group.feature_names),
        }
        for sequence_group in group.sequence_groups
    ]
    encoders = []
    for encoder in group.sequence_encoders:
        pooling = encoder.pooling_encoder
        encoders.append(
            {
                "input": pooling.input or sequence_groups[0]["name"],
                "pooling_type": pooling.pooling_type,
                "max_seq_length": pooling.max_seq_length,
            }
        )
    return {
        "name": group.group_name,
        "feature_names": list(group.feature_names),
        "sequence_groups": sequence_groups,
        "sequence_encoders": encoders,
        "embedding_name_suffix": group.embedding_name_suffix,
    }


def tower_kwargs(tower) -> dict:
    kwargs = {"input": tower.input}
    if tower.HasField("mlp"):
        kwargs["mlp"] = mlp_kwargs(tower.mlp)
    return kwargs


def candidate_probability_kwargs(params) -> dict:
    """`candidate_probability` → MatchModel's option; unset: train_counts,
    the best option measured (docs/retrieval_eval.md)."""
    option = params.candidate_probability
    if option.WhichOneof("source") == "streaming":
        streaming = option.streaming
        return {
            "source": "streaming",
            "num_buckets": streaming.num_buckets,
            "num_hashes": streaming.num_hashes,
            "alpha": streaming.alpha,
            "count_repeats": streaming.count_repeats,
            "warm_start": streaming.warm_start,
        }
    return {"source": "train_counts"}


def model_kwargs(
    config, feature_set: FeatureSet, item_counts: dict | None = None
) -> tuple[str, dict]:
    """(registry name, constructor kwargs) of the configured model.

    `item_counts`: the training input's item counts, which logQ correction
    with `train_counts` reads (`easymatch.data.item_counts`).
    """
    model_config = config.model_config
    kind = model_config.WhichOneof("model")
    params = getattr(model_config, kind)
    similarity = (
        type(params)
        .DESCRIPTOR.fields_by_name["similarity"]
        .enum_type.values_by_number[params.similarity]
        .name
    )
    kwargs = {
        "features": feature_set.model_specs(),
        "groups": [group_kwargs(g) for g in model_config.feature_groups],
        "user_tower": tower_kwargs(params.user_tower),
        "item_tower": tower_kwargs(params.item_tower),
        "output_dim": params.output_dim,
        "similarity": similarity,
        "temperature": params.temperature,
        "in_batch_negative": params.in_batch_negative,
        "logq_correction": params.logq_correction,
        "remove_accidental_hits": params.remove_accidental_hits,
        "mixed_negatives": params.mixed_negatives,
        "candidate_probability": candidate_probability_kwargs(params),
        "item_counts": item_counts,
        "recall_top_ks": [m.recall_at_k.top_k for m in model_config.metrics],
        "train_recall_top_ks": [
            m.recall_at_k.top_k for m in model_config.train_metrics
        ],
        "train_recall_decays": [
            [m.decay_rate, m.decay_step] for m in model_config.train_metrics
        ],
        "gradient_clipping": {
            "clipping_type": config.train_config.grad_clipping.clipping_type,
            "max_gradient": config.train_config.grad_clipping.max_gradient,
        },
        "mixed_precision": config.train_config.mixed_precision,
        "variational_dropout": (
            {
                "regularization_lambda": (
                    model_config.variational_dropout.regularization_lambda
                )
            }
            if model_config.HasField("variational_dropout")
            else None
        ),
    }
    return kind, kwargs


def build_model(
    config, feature_set: FeatureSet, item_counts: dict | None = None
) -> MatchModel:
    kind, kwargs = model_kwargs(config, feature_set, item_counts)
    return model_class(kind)(**kwargs)
