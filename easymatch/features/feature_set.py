"""The ordered collection of a model's features."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

import tensorflow as tf

from easymatch.features.base import Feature
from easymatch.specs.embedding import FeatureSpec


class FeatureSet(tf.Module):
    """Transforms a batch of raw columns into every feature tensor."""

    def __init__(self, features: Sequence[Feature]) -> None:
        super().__init__(name=None)
        names = [feature.feature_name for feature in features]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate feature names: {duplicates}")
        self.features = list(features)
        self._by_name = dict(zip(names, self.features, strict=True))

    def __getitem__(self, name: str) -> Feature:
        return self._by_name[name]

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def subset(self, names: Iterable[str]) -> FeatureSet:
        wanted = set(names)
        return FeatureSet(
            [f for f in self.features if f.feature_name in wanted]
        )

    def input_columns(self) -> dict[str, str]:
        """Column name → "string" | "float", in first-use order."""
        kinds: dict[str, str] = {}
        for feature in self.features:
            kind = feature.column_kind()
            # A column read both as text and as a number is read as text;
            # numeric features parse it back.
            if kinds.get(feature.input_column) != "string":
                kinds[feature.input_column] = kind
        return kinds

    def transform(
        self,
        columns: dict[str, tf.Tensor],
        single_valued: Collection[str] = (),
    ) -> dict[str, tf.Tensor]:
        """Every feature's `outputs`: its tensor and any companions.

        `single_valued`: columns known to hold one value per row.
        """
        tensors: dict[str, tf.Tensor] = {}
        for feature in self.features:
            tensors.update(
                feature.outputs(columns, feature.input_column in single_valued)
            )
        return tensors

    def specs(self) -> tuple[FeatureSpec, ...]:
        """What the model reads of each feature, in order."""
        return tuple(feature.spec() for feature in self.features)
