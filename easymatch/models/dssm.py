"""DSSM v1: each tower embeds its own feature group with its own tables."""

from __future__ import annotations

import keras
import tensorflow as tf

from easymatch.layers.embedding_group import EmbeddingGroup
from easymatch.models.match_model import MatchModel
from easymatch.models.tower import MatchTower


def group_feature_names(group: dict) -> list[str]:
    """Every feature a group reads, its sequence groups' included."""
    names = list(group.get("feature_names", []))
    for sequence_group in group.get("sequence_groups", []):
        names.extend(sequence_group.get("feature_names", []))
    return names


@keras.saving.register_keras_serializable(package="easymatch")
class DSSM(MatchModel):
    """Two towers over the groups named by `user_tower`/`item_tower` input.

    As in TorchEasyRec, v1 never shares tables across towers, even when
    `embedding_name` matches (SPEC §6.9): use DSSMV2 for that.
    """

    def __init__(
        self,
        features: list[dict],
        groups: list[dict],
        user_tower: dict,
        item_tower: dict,
        output_dim: int,
        similarity: str = "INNER_PRODUCT",
        variational_dropout: dict | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.feature_specs = features
        self.group_specs = groups
        self.user_tower_config = user_tower
        self.item_tower_config = item_tower
        self.output_dim = output_dim
        self.similarity = similarity
        self.variational_dropout = variational_dropout
        by_name = {group["name"]: group for group in groups}
        self.user_group = by_name[user_tower["input"]]
        self.item_group = by_name[item_tower["input"]]
        self.user_embedding = self._embedding_group(self.user_group, "user")
        self.item_embedding = self._embedding_group(self.item_group, "item")
        self.user_tower = self._tower(user_tower, self.user_embedding, "user")
        self.item_tower = self._tower(item_tower, self.item_embedding, "item")
        self.built = True

    def _embedding_group(self, group: dict, side: str) -> EmbeddingGroup:
        wanted = set(group_feature_names(group))
        return EmbeddingGroup(
            features=[f for f in self.feature_specs if f["name"] in wanted],
            groups=[group],
            name=f"{side}_embedding_group",
        )

    def _tower(
        self, tower: dict, embedding: EmbeddingGroup, side: str
    ) -> MatchTower:
        dims = embedding.group_feature_dims(tower["input"])
        layer = MatchTower(
            feature_dims=list(dims.values()),
            mlp=tower.get("mlp"),
            output_dim=self.output_dim,
            similarity=self.similarity,
            variational_dropout=self.variational_dropout,
            name=f"{side}_tower",
        )
        # Every width is known from the config: create all variables now,
        # under the caller's strategy scope, instead of at the first call.
        layer.build((None, sum(dims.values())))
        return layer

    @property
    def embedding_variables(self) -> list[keras.Variable]:
        return [
            *self.user_embedding.embedding_variables,
            *self.item_embedding.embedding_variables,
        ]

    def embed_users(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        group = self.user_embedding(features)[self.user_group["name"]]
        return self.user_tower(group, training=training)

    def embed_items(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor]:
        group = self.item_embedding(features)[self.item_group["name"]]
        return self.item_tower(group, training=training)

    def tower_outputs(
        self, features: dict[str, tf.Tensor], training: bool = False
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        user_emb, user_loss = self.embed_users(features, training=training)
        item_emb, item_loss = self.embed_items(features, training=training)
        return user_emb, item_emb, user_loss + item_loss

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            features=self.feature_specs,
            groups=self.group_specs,
            user_tower=self.user_tower_config,
            item_tower=self.item_tower_config,
            output_dim=self.output_dim,
            similarity=self.similarity,
            variational_dropout=self.variational_dropout,
        )
        return config
