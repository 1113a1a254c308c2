"""DSSM v2: SPEC T5, tables shared across towers, per-tower embedding."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT, run_cli
from test_models_dssm import FEATURES, GROUPS, padded, t4_sampler_batch

from easymatch.checkpoint import variable_tree
from easymatch.config import load_pipeline_config
from easymatch.models.builder import build_model
from easymatch.models.dssm import DSSM
from easymatch.models.dssm_v2 import DSSMV2
from easymatch.models.registry import model_class
from easymatch.run_context import RunContext
from easymatch.specs import (
    FeatureSpec,
    GroupSpec,
    MlpSpec,
    SequenceEncoderSpec,
    SequenceGroupSpec,
    TableSpec,
    TowerSpec,
)

TAOBAO_V2 = str(ROOT / "samples" / "dssm_v2_taobao.config")

# The user's history of item categories, sharing the item's table.
SHARED_FEATURES = [
    *FEATURES,
    FeatureSpec.sparse("seq__cat_i", TableSpec("cat_i_emb", 1000, 8)),
]
SHARED_GROUPS = [
    GroupSpec(
        "user",
        ("cat_u", "int_u"),
        (SequenceGroupSpec("seq", ("seq__cat_i",)),),
        (SequenceEncoderSpec("seq", "mean"),),
    ),
    GROUPS[1],
]
TOWERS = {
    "user_tower": TowerSpec("user", MlpSpec((12, 6))),
    "item_tower": TowerSpec("item", MlpSpec((12, 6))),
}


def make(model_type=DSSMV2, **kwargs):
    defaults = dict(
        features=SHARED_FEATURES,
        groups=SHARED_GROUPS,
        **TOWERS,
        output_dim=4,
        recall_top_ks=[1],
    )
    defaults.update(kwargs)
    return model_type(**defaults)


def shared_batch() -> dict[str, tf.Tensor]:
    batch = t4_sampler_batch()
    batch["seq__cat_i"] = tf.constant([[3, 5, -1], [-1, -1, -1]], tf.int64)
    return batch


def test_registry_maps_dssm_v2():
    assert model_class("dssm_v2") is DSSMV2
    assert model_class("dssm") is DSSM


def test_similarity_shape_matches_spec_t5():
    model = DSSMV2(
        features=FEATURES,
        groups=GROUPS,
        **TOWERS,
        output_dim=4,
    )
    # T5's user rows beyond B = 2 are TorchEasyRec's force_base_data_group
    # padding, which its user tower slices off; our user features arrive
    # with B rows, so the same batch without the padding rows.
    batch = {
        "cat_u": padded([1, 2]),
        "int_u": tf.constant([[0.2], [0.3]]),
        "cat_i": padded([1, 2, 1, 3]),
        "int_i": tf.constant([[0.2], [0.3], [0.4], [0.5]]),
    }
    outputs = model(batch)
    assert tuple(outputs["similarity"].shape) == (2, 3)
    # Rows are independent, so slicing T5's padded users gives the same.
    padded_users = {
        "cat_u": tf.constant([[1, -1], [2, 3], [-1, -1], [-1, -1]], tf.int64),
        "int_u": tf.constant([[0.2], [0.3], [0.0], [0.0]]),
    }
    sliced, _ = model.embed_users(padded_users)
    users, _ = model.embed_users(batch)
    np.testing.assert_allclose(sliced[:2], users, rtol=1e-6)


def test_one_embedding_group_shares_tables_across_towers():
    v2, v1 = make(), make(DSSM)
    names = [v.name for v in v2.embedding_variables]
    assert names == ["cat_u_emb", "cat_i_emb"]
    assert v2.user_embedding is v2.item_embedding
    assert len(v1.embedding_variables) == 3

    def size(model):
        return sum(int(np.prod(v.shape)) for v in model.embedding_variables)

    assert size(v1) - size(v2) == 1000 * 8
    # Checkpoints see the shared group once, before both towers.
    tree = variable_tree(v2)
    assert [k for k in tree if not k.startswith("v_")] == [
        "0_EmbeddingGroup",
        "1_MatchTower",
        "2_MatchTower",
    ]


def test_both_towers_train_the_shared_table():
    model = make()
    batch = shared_batch()
    table = model.embedding_variables[1]
    with tf.GradientTape(persistent=True) as tape:
        user, _ = model.embed_users(batch)
        item, _ = model.embed_items(batch)
        user_sum, item_sum = tf.reduce_sum(user), tf.reduce_sum(item)
    rows_from_user = tape.gradient(user_sum, table).indices.numpy()
    rows_from_item = tape.gradient(item_sum, table).indices.numpy()
    assert set(rows_from_user) == {3, 5}
    assert set(rows_from_item) == set(range(1, 8))


def test_each_tower_needs_only_its_own_features():
    model = make()
    batch = shared_batch()
    user_only = {k: batch[k] for k in ("cat_u", "int_u", "seq__cat_i")}
    item_only = {k: batch[k] for k in ("cat_i", "int_i")}
    user, _ = model.embed_users(user_only)
    item, _ = model.embed_items(item_only)
    outputs = model(batch)
    np.testing.assert_allclose(user, outputs["user_tower_emb"], rtol=1e-6)
    np.testing.assert_allclose(item, outputs["item_tower_emb"], rtol=1e-6)


def test_variational_dropout_on_each_towers_own_group():
    model = make(variational_dropout={"regularization_lambda": 0.01})
    # user: cat_u, int_u and the sequence encoder; item: cat_i, int_i.
    assert model.user_tower.dropout.feature_dims == [16, 1, 8]
    assert model.item_tower.dropout.feature_dims == [8, 1]
    outputs = model(shared_batch(), training=False)
    user_p = model.user_tower.dropout.keep_probabilities()
    item_p = model.item_tower.dropout.keep_probabilities()
    expected = 0.01 / 2 * user_p.sum() + 0.01 / 4 * item_p.sum()
    assert float(outputs["regularization_loss"]) == pytest.approx(
        expected, rel=1e-5
    )
    report = model.feature_keep_probabilities()
    assert list(report["user"]) == ["cat_u", "int_u", "user_seq_encoder_0"]
    np.testing.assert_allclose(list(report["item"].values()), item_p)


def test_save_and_reload_gives_identical_outputs(tmp_path):
    model = make(variational_dropout={"regularization_lambda": 0.01})
    batch = shared_batch()
    expected = model(batch)
    path = tmp_path / "dssm_v2.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    assert type(reloaded) is DSSMV2
    assert len(reloaded.embedding_variables) == 2
    for key in ("similarity", "user_tower_emb", "item_tower_emb"):
        np.testing.assert_allclose(
            reloaded(batch)[key], expected[key], rtol=1e-6
        )


def test_taobao_sample_v2_has_fewer_embedding_parameters_than_v1():
    config = load_pipeline_config(TAOBAO_V2)
    assert config.model_config.WhichOneof("model") == "dssm_v2"
    run = RunContext(config)
    v2 = build_model(run.specs.model)
    assert type(v2) is DSSMV2
    config.model_config.dssm.ParseFromString(
        config.model_config.dssm_v2.SerializeToString()
    )
    v1 = build_model(
        RunContext(config, feature_set=run.feature_set).specs.model
    )
    assert type(v1) is DSSM

    def size(model):
        return sum(int(np.prod(v.shape)) for v in model.embedding_variables)

    # The click_50_seq sub-features reuse adgroup_id, cate_id and brand.
    assert size(v1) - size(v2) == (846812 + 12961 + 461498) * 16


@pytest.mark.slow
def test_taobao_sample_v2_trains_and_evaluates(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = {
        "train_input_path": str(taobao_data / "train.parquet"),
        "eval_input_path": str(taobao_data / "eval.parquet"),
        "model_dir": str(model_dir),
        "data_config.batch_size": 32,
        "data_config.negative_sampler.input_path": str(
            taobao_data / "item_table.txt"
        ),
        "data_config.negative_sampler.num_sample": 16,
        "train_config.num_epochs": 0,
        "train_config.num_steps": 2,
        "train_config.save_checkpoints_steps": 2,
        "eval_config.num_steps": 1,
    }
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        TAOBAO_V2,
        "--edit_config_json",
        json.dumps(edits),
    )
    assert result.returncode == 0, result.stderr
    lines = (model_dir / "train_eval_result_v2.txt").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["global_step"] == 2
    assert {"recall@1", "recall@5", "softmax_cross_entropy"} <= set(last)
