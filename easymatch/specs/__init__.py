"""Typed, frozen specs of a run, derived once from the pipeline proto.

Data, models and export read these instead of the proto
(`derive.derive_specs`); layers take the embedding and group specs and
serialize them with `get_config`/`from_config`.
"""

from easymatch.specs.data import DataSpec
from easymatch.specs.embedding import FeatureSpec, TableSpec
from easymatch.specs.groups import (
    GroupSpec,
    MlpSpec,
    SequenceEncoderSpec,
    SequenceGroupSpec,
    TowerSpec,
)
from easymatch.specs.model import ModelSpec, RunSpecs
from easymatch.specs.retrieval import CandidateProbabilitySpec, RetrievalSpec

__all__ = [
    "CandidateProbabilitySpec",
    "DataSpec",
    "FeatureSpec",
    "GroupSpec",
    "MlpSpec",
    "ModelSpec",
    "RetrievalSpec",
    "RunSpecs",
    "SequenceEncoderSpec",
    "SequenceGroupSpec",
    "TableSpec",
    "TowerSpec",
]
