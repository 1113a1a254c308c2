"""Explicit map from model_config's `model` oneof name to a model class."""

from __future__ import annotations

from easymatch.models.dssm import DSSM
from easymatch.models.dssm_v2 import DSSMV2
from easymatch.models.match_model import MatchModel

MODEL_CLASSES: dict[str, type[MatchModel]] = {
    "dssm": DSSM,
    "dssm_v2": DSSMV2,
}


def model_class(oneof_name: str) -> type[MatchModel]:
    try:
        return MODEL_CLASSES[oneof_name]
    except KeyError:
        raise ValueError(
            f"model_config.{oneof_name} is not supported; supported: "
            f"{sorted(MODEL_CLASSES)}"
        ) from None
