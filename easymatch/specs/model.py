"""What a two-tower model is built from: features, groups, towers, loss."""

from __future__ import annotations

import dataclasses

from easymatch.specs.data import DataSpec
from easymatch.specs.embedding import FeatureSpec
from easymatch.specs.groups import GroupSpec, TowerSpec
from easymatch.specs.retrieval import RetrievalSpec


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A DSSM ("dssm") or DSSM v2 ("dssm_v2") and its training options.

    `variational_dropout`: regularization_lambda, None without dropout;
    `gradient_clipping`: (clipping_type, max_gradient).
    """

    kind: str
    features: tuple[FeatureSpec, ...]
    groups: tuple[GroupSpec, ...]
    user_tower: TowerSpec
    item_tower: TowerSpec
    output_dim: int
    retrieval: RetrievalSpec
    variational_dropout: float | None = None
    mixed_precision: str = ""
    gradient_clipping: tuple[str, float] = ("none", 1.0)


@dataclasses.dataclass(frozen=True)
class RunSpecs:
    """Everything a run derives from its pipeline config, derived once
    (`easymatch.specs.derive`)."""

    model: ModelSpec
    data: DataSpec

    @property
    def retrieval(self) -> RetrievalSpec:
        return self.model.retrieval
