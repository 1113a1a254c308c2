"""Feature groups: embed, pool and concatenate features into one tensor."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from easymatch.features.base import LENGTH_SUFFIX, WEIGHT_SUFFIX
from easymatch.layers.embedding_tables import EmbeddingTables
from easymatch.layers.pooling_encoder import PoolingEncoder
from easymatch.specs.embedding import FeatureSpec, TableSpec
from easymatch.specs.groups import GroupSpec


@dataclasses.dataclass(frozen=True)
class _Embedded:
    """A feature as one group reads it; `table` is empty for dense ones,
    `mlp` true for dense ones projected to `dim` (TorchEasyRec's MLP
    embedding)."""

    name: str
    dim: int
    table: str = ""
    pooling: str = ""
    weighted: bool = False
    mlp: bool = False


@dataclasses.dataclass(frozen=True)
class _Encoder:
    """A sequence encoder and the sequence group it reads."""

    key: str
    sequence_group: str
    features: tuple[_Embedded, ...]


@dataclasses.dataclass(frozen=True)
class _Group:
    features: tuple[_Embedded, ...]
    encoders: tuple[_Encoder, ...]
    feature_dims: tuple[tuple[str, int], ...]


@keras.saving.register_keras_serializable(package="easymatch")
class EmbeddingGroup(keras.layers.Layer):
    """Turns feature tensors into one `[B, D]` tensor per group (SPEC §3.2).

    A group's tensor is its features in `feature_names` order (sparse ones
    embedded and pooled over their ids, dense ones as they are), followed
    by its sequence encoders' outputs in the order listed. Each group reads
    only its own features, so groups may have different row counts.

    A weighted sparse feature multiplies each id's embedding by its weight
    before pooling; "mean" still divides by the number of ids. A sequence
    group concatenates its features per position (ids embedded, dense
    values as they are); its length is its first feature's: the number of
    ids >= 0, or a dense feature's `<name>__length`.

    Args:
        features: the specs of the features the groups read, with
            distinct names.
        groups: the groups' specs, with distinct names.
        **kwargs: passed to `keras.layers.Layer`.

    Call arguments:
        features: dict feature name → int64 ids `[B, L]` padded with -1
            (sparse) or float `[B, value_dim]` (dense); in sequence groups
            float `[B, L, value_dim]` (dense). Weighted features add
            `<name>__weight` float `[B, L]`, dense sequence features
            `<name>__length` int `[B]`.
        group_names: the groups to compute (default: all); the features
            of other groups need not be present.

    Returns:
        dict group name → float `[B, group_total_dim(group)]`.
    """

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        groups: Sequence[GroupSpec],
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.features = tuple(features)
        self.groups = tuple(groups)
        self._specs: dict[str, FeatureSpec] = {}
        for spec in self.features:
            if spec.name in self._specs:
                raise ValueError(f"Feature {spec.name!r} is listed twice.")
            self._specs[spec.name] = spec
        # table name → (table spec, first feature using it)
        self._table_users: dict[str, tuple[TableSpec, str]] = {}
        self._plans: dict[str, _Group] = {}
        self._encoders: dict[str, PoolingEncoder] = {}
        self._mlp_weights: dict[str, keras.Variable] = {}
        sequence_group_names: set[str] = set()
        for group in self.groups:
            if group.name in self._plans:
                raise ValueError(f"Group {group.name!r} is listed twice.")
            self._plans[group.name] = self._plan_group(
                group, sequence_group_names
            )
        self._tables = EmbeddingTables(
            [spec for spec, _ in self._table_users.values()],
            name="embedding_tables",
        )
        self.built = True

    def _embedded(self, group: str, feature: str, suffix: str) -> _Embedded:
        spec = self._specs.get(feature)
        if spec is None:
            raise ValueError(
                f"Group {group!r} uses unknown feature {feature!r}."
            )
        if not spec.is_sparse:
            if not spec.mlp_dim:
                return _Embedded(feature, spec.value_dim)
            if feature not in self._mlp_weights:
                self._mlp_weights[feature] = self._mlp_weight(spec)
            return _Embedded(feature, spec.mlp_dim, mlp=True)
        table = spec.table
        if suffix:
            table = table.renamed(f"{table.name}_{suffix}")
        known, user = self._table_users.setdefault(table.name, (table, feature))
        if not known.same_shape(table):
            raise ValueError(
                f"Features {user!r} and {feature!r} share embedding table "
                f"{table.name!r} but disagree on its shape: "
                f"{known.num_embeddings}x{known.embedding_dim} vs "
                f"{table.num_embeddings}x{table.embedding_dim}."
            )
        return _Embedded(
            feature,
            table.embedding_dim,
            table.name,
            spec.pooling,
            spec.weighted,
        )

    def _mlp_weight(self, spec: FeatureSpec) -> keras.Variable:
        # tzrec MLPEmbedding: randn * sqrt(2 / (fan_in + fan_out)).
        stddev = math.sqrt(2.0 / (spec.value_dim + spec.mlp_dim))
        return self.add_weight(
            name=f"mlp_{spec.name}",
            shape=(spec.value_dim, spec.mlp_dim),
            initializer=keras.initializers.RandomNormal(stddev=stddev),
        )

    def _plan_group(self, group: GroupSpec, seen: set[str]) -> _Group:
        name = group.name
        suffix = group.embedding_name_suffix
        features = tuple(
            self._embedded(name, f, suffix) for f in group.feature_names
        )
        dims = [(f.name, f.dim) for f in features]
        sequences: dict[str, tuple[_Embedded, ...]] = {}
        for sequence_group in group.sequence_groups:
            seq_name = sequence_group.name
            if seq_name in seen:
                raise ValueError(f"Sequence group {seq_name!r} is not unique.")
            seen.add(seq_name)
            seq_features = tuple(
                self._embedded(name, f, suffix)
                for f in sequence_group.feature_names
            )
            if not seq_features or any(f.weighted for f in seq_features):
                raise ValueError(
                    f"Sequence group {seq_name!r} needs features, none of "
                    "them weighted."
                )
            sequences[seq_name] = seq_features
        encoders = []
        for i, encoder in enumerate(group.sequence_encoders):
            key = f"{name}_seq_encoder_{i}"
            seq_name = encoder.input
            if seq_name not in sequences:
                raise ValueError(
                    f"{key}: input {seq_name!r} is not a sequence group of "
                    f"group {name!r}."
                )
            self._encoders[key] = PoolingEncoder(
                pooling_type=encoder.pooling_type,
                max_seq_length=encoder.max_seq_length,
                name=key,
            )
            encoders.append(_Encoder(key, seq_name, sequences[seq_name]))
            dims.append((key, sum(f.dim for f in sequences[seq_name])))
        unused = set(sequences) - {e.sequence_group for e in encoders}
        if unused:
            raise ValueError(
                f"Sequence groups {sorted(unused)} of group {name!r} have "
                "no sequence encoder."
            )
        if not dims:
            raise ValueError(f"Group {name!r} has no features.")
        return _Group(features, tuple(encoders), tuple(dims))

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        """The embedding table variables (for the sparse optimizer)."""
        return self._tables.embedding_variables

    def group_feature_dims(self, group_name: str) -> dict[str, int]:
        """Ordered feature name → output dim, then `<group>_seq_encoder_<i>`."""
        return dict(self._plans[group_name].feature_dims)

    def group_total_dim(self, group_name: str) -> int:
        """Width of the group tensor: the sum of `group_feature_dims`."""
        return sum(dim for _, dim in self._plans[group_name].feature_dims)

    def _pooled(self, features: dict[str, Any], feature: _Embedded) -> Any:
        value = features[feature.name]
        if feature.mlp:
            value = ops.cast(value, self.compute_dtype)
            return ops.matmul(value, self._mlp_weights[feature.name])
        if not feature.table:
            return ops.cast(value, self.compute_dtype)
        embedded = self._tables.lookup(feature.table, value)
        if feature.weighted:
            weights = features[feature.name + WEIGHT_SUFFIX]
            embedded *= ops.expand_dims(ops.cast(weights, embedded.dtype), -1)
        pooled = ops.sum(embedded, axis=-2)
        if feature.pooling == "sum":
            return pooled
        count = ops.sum(
            ops.cast(ops.greater_equal(value, 0), pooled.dtype),
            axis=-1,
            keepdims=True,
        )
        return pooled / ops.maximum(count, 1.0)

    def _positions(self, features: dict[str, Any], feature: _Embedded) -> Any:
        """One sequence feature as `[B, L, dim]`, zero beyond the length."""
        if feature.table:
            return self._tables.lookup(feature.table, features[feature.name])
        return ops.cast(features[feature.name], self.compute_dtype)

    def _encoded(self, features: dict[str, Any], encoder: _Encoder) -> Any:
        sequence = ops.concatenate(
            [self._positions(features, f) for f in encoder.features], axis=-1
        )
        first = encoder.features[0]
        if first.table:
            length = ops.sum(
                ops.cast(ops.greater_equal(features[first.name], 0), "int32"),
                axis=-1,
            )
        else:
            length = features[first.name + LENGTH_SUFFIX]
        return self._encoders[encoder.key](sequence, length)

    def call(
        self,
        features: dict[str, Any],
        group_names: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        if group_names is None:
            group_names = list(self._plans)
        unknown = [name for name in group_names if name not in self._plans]
        if unknown:
            raise ValueError(
                f"Unknown groups {unknown}; groups: {list(self._plans)}."
            )
        outputs = {}
        for name in group_names:
            plan = self._plans[name]
            parts = [self._pooled(features, f) for f in plan.features]
            parts += [self._encoded(features, e) for e in plan.encoders]
            outputs[name] = ops.concatenate(parts, axis=-1)
        return outputs

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            features=[spec.get_config() for spec in self.features],
            groups=[spec.get_config() for spec in self.groups],
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> EmbeddingGroup:
        config = dict(config)
        config["features"] = [
            FeatureSpec.from_config(f) for f in config["features"]
        ]
        config["groups"] = [GroupSpec.from_config(g) for g in config["groups"]]
        return cls(**config)
