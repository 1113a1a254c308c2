"""A ModelSpec → the model: DSSM or DSSM v2 and its training options."""

from __future__ import annotations

from easymatch.models.match_model import MatchModel
from easymatch.models.registry import model_class
from easymatch.specs import ModelSpec


def model_kwargs(spec: ModelSpec, item_counts: dict | None = None) -> dict:
    """The model class's constructor arguments.

    `item_counts`: the training input's item counts, which logQ correction
    with `train_counts` reads (`easymatch.data.item_counts`).
    """
    retrieval = spec.retrieval
    clipping_type, max_gradient = spec.gradient_clipping
    return {
        "features": spec.features,
        "groups": spec.groups,
        "user_tower": spec.user_tower,
        "item_tower": spec.item_tower,
        "output_dim": spec.output_dim,
        "similarity": retrieval.similarity,
        "temperature": retrieval.temperature,
        "in_batch_negative": retrieval.in_batch_negative,
        "logq_correction": retrieval.logq_correction,
        "remove_accidental_hits": retrieval.remove_accidental_hits,
        "mixed_negatives": retrieval.mixed_negatives,
        "candidate_probability": (retrieval.candidate_probability.get_config()),
        "item_counts": item_counts,
        "recall_top_ks": list(retrieval.recall_top_ks),
        "train_recall_top_ks": list(retrieval.train_recall_top_ks),
        "train_recall_decays": [
            list(decay) for decay in retrieval.train_recall_decays
        ],
        "gradient_clipping": {
            "clipping_type": clipping_type,
            "max_gradient": max_gradient,
        },
        "mixed_precision": spec.mixed_precision,
        "variational_dropout": (
            {"regularization_lambda": spec.variational_dropout}
            if spec.variational_dropout is not None
            else None
        ),
    }


def build_model(spec: ModelSpec, item_counts: dict | None = None) -> MatchModel:
    return model_class(spec.kind)(**model_kwargs(spec, item_counts))
