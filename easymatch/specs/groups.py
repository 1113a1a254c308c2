"""Feature groups and towers: which features each tower embeds, and how.

Frozen dataclasses with `get_config`/`from_config`; lists are tuples so
that a spec is immutable and its config is plain JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class SequenceGroupSpec:
    """Sequence features concatenated per position."""

    name: str
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))


@dataclasses.dataclass(frozen=True)
class SequenceEncoderSpec:
    """A pooling encoder over the sequence group `input`."""

    input: str
    pooling_type: str = "mean"
    max_seq_length: int = 0


@dataclasses.dataclass(frozen=True)
class GroupSpec:
    """A feature group: its features' tensors in `feature_names` order,
    then one tensor per sequence encoder. Its tables are named
    `<embedding_name>_<embedding_name_suffix>` when the suffix is set."""

    name: str
    feature_names: tuple[str, ...] = ()
    sequence_groups: tuple[SequenceGroupSpec, ...] = ()
    sequence_encoders: tuple[SequenceEncoderSpec, ...] = ()
    embedding_name_suffix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "feature_names", tuple(self.feature_names))
        object.__setattr__(self, "sequence_groups", tuple(self.sequence_groups))
        object.__setattr__(
            self, "sequence_encoders", tuple(self.sequence_encoders)
        )

    @property
    def all_feature_names(self) -> tuple[str, ...]:
        """Every feature the group reads, its sequence groups' included."""
        names = list(self.feature_names)
        for sequence_group in self.sequence_groups:
            names.extend(sequence_group.feature_names)
        return tuple(names)

    def get_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> GroupSpec:
        config = dict(config)
        config["sequence_groups"] = tuple(
            SequenceGroupSpec(**g) for g in config.get("sequence_groups", ())
        )
        config["sequence_encoders"] = tuple(
            SequenceEncoderSpec(**e)
            for e in config.get("sequence_encoders", ())
        )
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class MlpSpec:
    """A tower's MLP, as `easymatch.layers.MLP` takes it."""

    hidden_units: tuple[int, ...]
    activation: str = "nn.ReLU"
    use_bn: bool = False
    use_ln: bool = False
    bias: bool = True
    dropout_ratio: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden_units", tuple(self.hidden_units))
        object.__setattr__(self, "dropout_ratio", tuple(self.dropout_ratio))

    def get_config(self) -> dict[str, Any]:
        """The MLP layer's keyword arguments."""
        config = dataclasses.asdict(self)
        config["hidden_units"] = list(self.hidden_units)
        config["dropout_ratio"] = list(self.dropout_ratio)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> MlpSpec:
        return cls(**config)


@dataclasses.dataclass(frozen=True)
class TowerSpec:
    """A tower over the group `input`, with an optional MLP."""

    input: str
    mlp: MlpSpec | None = None

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"input": self.input}
        if self.mlp is not None:
            config["mlp"] = self.mlp.get_config()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TowerSpec:
        mlp = config.get("mlp")
        return cls(config["input"], MlpSpec.from_config(mlp) if mlp else None)
