"""Negative samplers from local item/user/edge tables (SPEC §2.6, §3.8)."""

from easymatch.data.samplers.builder import build_sampler
from easymatch.data.samplers.hard_negative_sampler import (
    HardNegativeSampler,
    HardNegativeSamplerV2,
)
from easymatch.data.samplers.negative_sampler import (
    NegativeSampler,
    Sampler,
)
from easymatch.data.samplers.negative_sampler_v2 import NegativeSamplerV2
from easymatch.data.samplers.pipeline import with_negatives

__all__ = [
    "HardNegativeSampler",
    "HardNegativeSamplerV2",
    "NegativeSampler",
    "NegativeSamplerV2",
    "Sampler",
    "build_sampler",
    "with_negatives",
]
