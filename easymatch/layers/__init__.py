"""Keras layers of the match stack: embeddings, pooling, MLP, dropout."""

from easymatch.layers.embedding_group import EmbeddingGroup
from easymatch.layers.embedding_tables import EmbeddingTables
from easymatch.layers.mlp import MLP
from easymatch.layers.pooling_encoder import PoolingEncoder
from easymatch.layers.variational_dropout import VariationalDropout

__all__ = [
    "MLP",
    "EmbeddingGroup",
    "EmbeddingTables",
    "PoolingEncoder",
    "VariationalDropout",
]
