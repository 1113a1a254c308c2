"""DSSM built from plain arguments: shapes (SPEC T4), training, reload."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.models.dssm import DSSM
from easymatch.side_inputs import HARD_NEG_INDICES
from easymatch.specs import (
    FeatureSpec,
    GroupSpec,
    MlpSpec,
    TableSpec,
    TowerSpec,
)

FEATURES = [
    FeatureSpec.sparse("cat_u", TableSpec("cat_u_emb", 100, 16)),
    FeatureSpec.sparse("cat_i", TableSpec("cat_i_emb", 1000, 8)),
    FeatureSpec.dense("int_u", value_dim=1),
    FeatureSpec.dense("int_i", value_dim=1),
]
GROUPS = [
    GroupSpec("user", ("cat_u", "int_u")),
    GroupSpec("item", ("cat_i", "int_i")),
]


def make_dssm(**kwargs) -> DSSM:
    defaults = dict(
        features=FEATURES,
        groups=GROUPS,
        user_tower=TowerSpec("user", MlpSpec((12, 6))),
        item_tower=TowerSpec("item", MlpSpec((12, 6))),
        output_dim=4,
        recall_top_ks=[1],
    )
    defaults.update(kwargs)
    return DSSM(**defaults)


def padded(lengths: list[int]) -> tf.Tensor:
    """Ids 1..n laid out row by row with the given lengths, -1 padded."""
    rows, next_id = [], 1
    for length in lengths:
        rows.append(list(range(next_id, next_id + length)))
        next_id += length
    width = max(max(lengths), 1)
    return tf.constant(
        [row + [-1] * (width - len(row)) for row in rows], tf.int64
    )


def t4_sampler_batch() -> dict[str, tf.Tensor]:
    return {
        "cat_u": padded([1, 2]),
        "int_u": tf.constant([[0.2], [0.3]]),
        "cat_i": padded([1, 2, 1, 3]),
        "int_i": tf.constant([[0.2], [0.3], [0.4], [0.5]]),
    }


def test_sampler_mode_similarity_shape_matches_spec_t4():
    model = make_dssm()
    outputs = model(t4_sampler_batch())
    assert tuple(outputs["similarity"].shape) == (2, 3)
    assert tuple(outputs["user_tower_emb"].shape) == (2, 4)
    assert tuple(outputs["item_tower_emb"].shape) == (4, 4)


def test_hard_negative_similarity_shape_matches_spec_t4():
    model = make_dssm()
    batch = {
        "cat_u": padded([1, 2]),
        "int_u": tf.constant([[0.2], [0.3]]),
        "cat_i": padded([1, 2, 1, 3, 1, 1, 1]),
        "int_i": tf.constant([[0.2 + 0.1 * i] for i in range(7)]),
    }
    side = {HARD_NEG_INDICES: tf.constant([[0, 0], [1, 0], [1, 1]])}
    similarity = model(batch, side)["similarity"].numpy()
    assert similarity.shape == (2, 5)
    assert similarity[0, 4] == pytest.approx(-1e32, rel=1e-6)


def test_cosine_towers_are_unit_length_and_temperature_scales():
    model = make_dssm(
        similarity="COSINE", temperature=0.5, in_batch_negative=True
    )
    batch = t4_sampler_batch()
    outputs = model(batch)
    norms = np.linalg.norm(outputs["user_tower_emb"].numpy(), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    expected = (
        outputs["user_tower_emb"].numpy()
        @ outputs["item_tower_emb"].numpy().T
        / 0.5
    )
    np.testing.assert_allclose(
        outputs["similarity"].numpy(), expected, rtol=1e-5
    )


def in_batch_dataset(num_rows: int = 64, batch_size: int = 16):
    """Users u click item u: perfectly learnable in-batch structure."""
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, num_rows)
    features = {
        "cat_u": users[:, None].astype(np.int64),
        "int_u": rng.random((num_rows, 1)).astype(np.float32),
        "cat_i": users[:, None].astype(np.int64) + 500,
        "int_i": rng.random((num_rows, 1)).astype(np.float32),
    }
    ones = np.ones(num_rows, np.float32)
    return tf.data.Dataset.from_tensor_slices((features, ones, ones)).batch(
        batch_size
    )


def test_fit_with_two_optimizers_updates_tables_and_lowers_loss():
    keras.utils.set_random_seed(0)
    model = make_dssm(
        in_batch_negative=True, similarity="COSINE", temperature=0.1
    )
    model.compile(
        dense_optimizer=keras.optimizers.Adam(0.01),
        sparse_optimizer=keras.optimizers.Adagrad(0.1),
    )
    dataset = in_batch_dataset()
    before = model.evaluate(dataset, return_dict=True, verbose=0)
    table = model.user_embedding.embedding_variables[0]
    initial = np.array(table.numpy())
    model.fit(dataset, epochs=15, verbose=0)
    after = model.evaluate(dataset, return_dict=True, verbose=0)
    assert after["softmax_cross_entropy"] < before["softmax_cross_entropy"]
    assert after["recall@1"] > before["recall@1"]
    assert not np.allclose(initial, table.numpy())
    # Both optimizers stepped, once per batch.
    assert int(model.optimizer.iterations) == 15 * 4
    assert int(model.sparse_optimizer.iterations) == 15 * 4


def test_variational_dropout_loss_joins_the_total_loss():
    model = make_dssm(variational_dropout={"regularization_lambda": 0.01})
    outputs = model(t4_sampler_batch(), training=False)
    # user: 2 rows, item: 4 rows; feature_p ~ N(0,1) per feature.
    user_p = model.user_tower.dropout.keep_probabilities()
    item_p = model.item_tower.dropout.keep_probabilities()
    expected = 0.01 / 2 * user_p.sum() + 0.01 / 4 * item_p.sum()
    assert float(outputs["regularization_loss"]) == pytest.approx(
        expected, rel=1e-5
    )


def test_save_and_reload_gives_identical_outputs(tmp_path):
    model = make_dssm(variational_dropout={"regularization_lambda": 0.01})
    batch = t4_sampler_batch()
    expected = model(batch)
    path = tmp_path / "dssm.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    actual = reloaded(batch)
    for key in ("similarity", "user_tower_emb", "item_tower_emb"):
        np.testing.assert_allclose(
            actual[key].numpy(), expected[key].numpy(), rtol=1e-6
        )
    traced = tf.function(lambda b: reloaded(b))(batch)
    np.testing.assert_allclose(
        traced["similarity"].numpy(),
        expected["similarity"].numpy(),
        rtol=1e-6,
    )


def test_towers_name_the_features_they_read():
    model = make_dssm()
    assert model.tower_feature_names("user") == ["cat_u", "int_u"]
    assert model.tower_feature_names("item") == ["cat_i", "int_i"]
