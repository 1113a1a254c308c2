"""Embedding tables and the features that read them, as layers take them.

keras-rs `TableConfig`/`FeatureConfig` style: frozen dataclasses with
`get_config`/`from_config`, so a layer's config holds plain values and
its `from_config` rebuilds the specs. A spec checks itself when made, so
a layer built from specs never sees a malformed one.
"""

from __future__ import annotations

import dataclasses
from typing import Any

SPARSE = "sparse"
DENSE = "dense"
FEATURE_POOLINGS = ("sum", "mean")


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """One embedding table: `num_embeddings` rows of `embedding_dim`.

    `initializer`: a Keras initializer identifier or serialized config;
    None is torchrec's uniform(±sqrt(1 / num_embeddings)).
    """

    name: str
    num_embeddings: int
    embedding_dim: int
    initializer: str | dict | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("An embedding table has no name.")
        if self.num_embeddings <= 0 or self.embedding_dim <= 0:
            raise ValueError(
                f"Embedding table {self.name!r} needs positive "
                f"num_embeddings and embedding_dim, got "
                f"{self.num_embeddings} and {self.embedding_dim}."
            )

    def renamed(self, name: str) -> TableSpec:
        return dataclasses.replace(self, name=name)

    def same_shape(self, other: TableSpec) -> bool:
        return (self.num_embeddings, self.embedding_dim) == (
            other.num_embeddings,
            other.embedding_dim,
        )

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TableSpec:
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """A feature as the model reads it.

    Sparse: int64 ids embedded in `table` and pooled by `pooling`, each
    id's embedding scaled by `<name>__weight` when `weighted`. Dense:
    `value_dim` floats, projected to `mlp_dim` by a bias-free weight when
    `mlp_dim > 0` (TorchEasyRec's MLP embedding).
    """

    name: str
    kind: str
    table: TableSpec | None = None
    pooling: str = "sum"
    weighted: bool = False
    value_dim: int = 0
    mlp_dim: int = 0

    def __post_init__(self) -> None:
        name = self.name
        if not name:
            raise ValueError("A feature has no name.")
        if self.kind == DENSE:
            if self.value_dim <= 0:
                raise ValueError(f"Dense feature {name!r} needs value_dim > 0.")
            if self.mlp_dim < 0:
                raise ValueError(f"Dense feature {name!r} needs mlp_dim >= 0.")
        elif self.kind == SPARSE:
            if self.table is None:
                raise ValueError(f"Sparse feature {name!r} needs a table.")
            if self.pooling not in FEATURE_POOLINGS:
                raise ValueError(
                    f"Feature {name!r}: pooling must be one of "
                    f"{FEATURE_POOLINGS}, got {self.pooling!r}."
                )
        else:
            raise ValueError(
                f"Feature {name!r}: kind must be {SPARSE!r} or {DENSE!r}, "
                f"got {self.kind!r}."
            )

    @classmethod
    def sparse(
        cls,
        name: str,
        table: TableSpec,
        pooling: str = "sum",
        weighted: bool = False,
    ) -> FeatureSpec:
        return cls(name, SPARSE, table, pooling=pooling, weighted=weighted)

    @classmethod
    def dense(cls, name: str, value_dim: int, mlp_dim: int = 0) -> FeatureSpec:
        return cls(name, DENSE, value_dim=value_dim, mlp_dim=mlp_dim)

    @property
    def is_sparse(self) -> bool:
        return self.kind == SPARSE

    @property
    def dim(self) -> int:
        """Width of the feature's model tensor (one position of it)."""
        if self.table is not None:
            return self.table.embedding_dim
        return self.mlp_dim or self.value_dim

    def get_config(self) -> dict[str, Any]:
        # asdict turns the table into its config too.
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FeatureSpec:
        config = dict(config)
        if config.get("table") is not None:
            config["table"] = TableSpec.from_config(config["table"])
        return cls(**config)
