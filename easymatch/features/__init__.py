"""Raw input columns → ids and values, built from stock TF ops only.

The same objects run in the tf.data input pipeline and inside exported
tower SavedModels, so training and serving cannot disagree.
"""

from easymatch.features.base import Feature
from easymatch.features.feature_set import FeatureSet
from easymatch.features.id_feature import IdFeature
from easymatch.features.raw_feature import RawFeature
from easymatch.features.sequence_feature import (
    SequenceIdFeature,
    SequenceRawFeature,
)

__all__ = [
    "Feature",
    "FeatureSet",
    "IdFeature",
    "RawFeature",
    "SequenceIdFeature",
    "SequenceRawFeature",
]
