"""DSSM v1: each tower embeds its own feature group with its own tables."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf

from easymatch.layers.embedding_group import EmbeddingGroup
from easymatch.models.match_model import MatchModel
from easymatch.models.tower import MatchTower
from easymatch.specs.embedding import FeatureSpec
from easymatch.specs.groups import GroupSpec, TowerSpec


@keras.saving.register_keras_serializable(package="easymatch")
class DSSM(MatchModel):
    """Two towers over the groups named by `user_tower`/`item_tower` input.

    As in TorchEasyRec, v1 never shares tables across towers, even when
    `embedding_name` matches (SPEC §6.9): use DSSMV2 for that.
    """

    def __init__(
        self,
        features: Sequence[FeatureSpec],
        groups: Sequence[GroupSpec],
        user_tower: TowerSpec,
        item_tower: TowerSpec,
        output_dim: int,
        similarity: str = "INNER_PRODUCT",
        variational_dropout: dict | None = None,
        mixed_precision: str = "",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.mixed_precision = mixed_precision
        self.feature_specs = tuple(features)
        self.group_specs = tuple(groups)
        self.user_tower_spec = user_tower
        self.item_tower_spec = item_tower
        self.output_dim = output_dim
        self.similarity = similarity
        self.variational_dropout = variational_dropout
        by_name = {group.name: group for group in self.group_specs}
        self.user_group = by_name[user_tower.input]
        self.item_group = by_name[item_tower.input]
        self.user_embedding, self.item_embedding = self._embedding_groups()
        self.user_tower = self._tower(user_tower, self.user_embedding, "user")
        self.item_tower = self._tower(item_tower, self.item_embedding, "item")
        self.built = True

    def _embedding_groups(self) -> tuple[EmbeddingGroup, EmbeddingGroup]:
        """(user, item) EmbeddingGroups: one per tower in v1."""
        return (
            self._embedding_group([self.user_group], "user_embedding_group"),
            self._embedding_group([self.item_group], "item_embedding_group"),
        )

    def _embedding_group(
        self, groups: Sequence[GroupSpec], name: str
    ) -> EmbeddingGroup:
        wanted = {f for group in groups for f in group.all_feature_names}
        return EmbeddingGroup(
            features=[f for f in self.feature_specs if f.name in wanted],
            groups=groups,
            name=name,
        )

    def _tower(
        self, tower: TowerSpec, embedding: EmbeddingGroup, side: str
    ) -> MatchTower:
        dims = embedding.group_feature_dims(tower.input)
        layer = MatchTower(
            feature_dims=list(dims.values()),
            mlp=tower.mlp.get_config() if tower.mlp else None,
            output_dim=self.output_dim,
            similarity=self.similarity,
            variational_dropout=self.variational_dropout,
            mixed_precision=self.mixed_precision,
            name=f"{side}_tower",
        )
        # Every width is known from the config: create all variables now,
        # under the caller's strategy scope, instead of at the first call.
        layer.build((None, sum(dims.values())))
        return layer

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        variables = {
            id(v): v
            for group in (self.user_embedding, self.item_embedding)
            for v in group.embedding_variables
        }
        return list(variables.values())

    def tower_feature_names(self, side: str) -> list[str]:
        group = {"user": self.user_group, "item": self.item_group}[side]
        return list(group.all_feature_names)

    def embed_users(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(user embedding, variational-dropout loss) from user features."""
        name = self.user_group.name
        group = self.user_embedding(features, group_names=[name])[name]
        return self.user_tower(group, training=training)

    def embed_items(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """(item embedding, variational-dropout loss) from item features."""
        name = self.item_group.name
        group = self.item_embedding(features, group_names=[name])[name]
        return self.item_tower(group, training=training)

    def feature_keep_probabilities(self) -> dict[str, dict[str, float]]:
        """Tower → feature → learned keep probability, 1 − sigmoid(p).

        Only towers with variational dropout appear; feature keys are those
        of `EmbeddingGroup.group_feature_dims` (sequence encoders as
        `<group>_seq_encoder_<i>`).
        """
        report = {}
        for side, embedding, group, tower in (
            ("user", self.user_embedding, self.user_group, self.user_tower),
            ("item", self.item_embedding, self.item_group, self.item_tower),
        ):
            if tower.dropout is None:
                continue
            names = embedding.group_feature_dims(group.name)
            keep = tower.dropout.keep_probabilities()
            report[side] = dict(zip(names, map(float, keep), strict=True))
        return report

    def tower_outputs(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        user_emb, user_loss = self.embed_users(features, training=training)
        item_emb, item_loss = self.embed_items(features, training=training)
        return user_emb, item_emb, user_loss + item_loss

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            features=[spec.get_config() for spec in self.feature_specs],
            groups=[spec.get_config() for spec in self.group_specs],
            user_tower=self.user_tower_spec.get_config(),
            item_tower=self.item_tower_spec.get_config(),
            output_dim=self.output_dim,
            similarity=self.similarity,
            variational_dropout=self.variational_dropout,
            mixed_precision=self.mixed_precision,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> DSSM:
        config = dict(config)
        config["features"] = [
            FeatureSpec.from_config(f) for f in config["features"]
        ]
        config["groups"] = [GroupSpec.from_config(g) for g in config["groups"]]
        for side in ("user_tower", "item_tower"):
            config[side] = TowerSpec.from_config(config[side])
        return cls(**config)
