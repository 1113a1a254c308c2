"""A model_dir written before the Retrieval task layer existed (main at
060ec99, the estimator a direct sub-layer of the model) resumes and
exports: the task's sub-layers are keyed as the model's own.

The old checkpoint is written here with the old key names spelled out,
not taken from the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf
from conftest import ROOT

from easymatch.checkpoint import make_manager, restore, variable_tree
from easymatch.config import load_pipeline_config
from easymatch.export.export_model import export
from easymatch.models.builder import build_model
from easymatch.run_context import RunContext
from easymatch.training.loop import train_and_evaluate

BUCKETS = 64
# samples/dssm_planted.config with a streaming estimator of 64 buckets:
# every variable's checkpoint key and shape, as main wrote them.
OLD_LAYOUT = {
    "0_FrequencyEstimator/v_step": (),
    "0_FrequencyEstimator/v_last_seen": (2 * BUCKETS,),
    "0_FrequencyEstimator/v_interval": (2 * BUCKETS,),
    "1_EmbeddingGroup/0_EmbeddingTables/v_user_id_emb": (2000, 16),
    "2_EmbeddingGroup/0_EmbeddingTables/v_item_id_emb": (1000, 16),
    "3_MatchTower/0_MLP/0_Dense/v_kernel": (16, 64),
    "3_MatchTower/0_MLP/0_Dense/v_bias": (64,),
    "3_MatchTower/1_MLP/0_Dense/v_kernel": (64, 16),
    "3_MatchTower/1_MLP/0_Dense/v_bias": (16,),
    "4_MatchTower/0_MLP/0_Dense/v_kernel": (16, 64),
    "4_MatchTower/0_MLP/0_Dense/v_bias": (64,),
    "4_MatchTower/1_MLP/0_Dense/v_kernel": (64, 16),
    "4_MatchTower/1_MLP/0_Dense/v_bias": (16,),
}
OLD_STEP = 3
OLD_ESTIMATOR_STEP = 7


def planted_config(tmp_path, num_steps: int = 5):
    """The planted sample on 64 hand-made rows, streaming logQ."""
    rng = np.random.default_rng(0)
    path = tmp_path / "train.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(rng.integers(0, 50, 64), pa.int64()),
                "item_id": pa.array(rng.integers(0, 30, 64), pa.int64()),
                "label": [1.0] * 64,
            }
        ),
        path,
    )
    edits = {
        "train_input_path": str(path),
        "eval_input_path": "",
        "model_dir": str(tmp_path / "model"),
        "data_config.batch_size": 16,
        "train_config.num_epochs": 0,
        "train_config.num_steps": num_steps,
        "model_config.dssm.candidate_probability": {
            "streaming": {"num_buckets": BUCKETS}
        },
    }
    return load_pipeline_config(
        str(ROOT / "samples" / "dssm_planted.config"), json.dumps(edits)
    )


def flat(tree: dict, prefix: str = "") -> dict[str, tf.Variable]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = value
    return out


def nested(values: dict[str, tf.Variable]) -> dict:
    tree: dict = {}
    for key, value in values.items():
        *parents, leaf = key.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree


def old_values() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    values = {}
    for key, shape in OLD_LAYOUT.items():
        if key.endswith("v_step"):
            values[key] = np.int64(OLD_ESTIMATOR_STEP)
        elif key.endswith("v_last_seen"):
            values[key] = rng.integers(0, OLD_ESTIMATOR_STEP, shape)
        elif key.endswith("v_interval"):
            values[key] = rng.uniform(1, 5, shape).astype(np.float32)
        else:
            values[key] = rng.normal(size=shape).astype(np.float32)
    return values


def old_key_variables(model) -> dict:
    """Each old key's variable, found by the model's attributes (not by
    the checkpoint code under test)."""
    estimator = model.task.frequency_estimator
    found = {
        "0_FrequencyEstimator/v_step": estimator.step,
        "0_FrequencyEstimator/v_last_seen": estimator.last_seen,
        "0_FrequencyEstimator/v_interval": estimator.interval,
    }
    for index, group in ((1, model.user_embedding), (2, model.item_embedding)):
        (table,) = group.embedding_variables
        found[f"{index}_EmbeddingGroup/0_EmbeddingTables/v_{table.name}"] = (
            table
        )
    for index, tower in ((3, model.user_tower), (4, model.item_tower)):
        for position, mlp in enumerate((tower.mlp, tower.projection)):
            for weight in mlp.weights:
                key = f"{index}_MatchTower/{position}_MLP/0_Dense/v_"
                found[key + weight.name] = weight
    return found


def write_old_model_dir(config) -> dict[str, np.ndarray]:
    """model.ckpt-3 in the old layout. The optimizers track the model's
    variables too, so the values go into a built model's variables."""
    values = old_values()
    model = RunContext(config).create_model()
    variables = old_key_variables(model)
    assert set(variables) == set(OLD_LAYOUT)
    for key, variable in variables.items():
        variable.assign(values[key])
    model.optimizer.iterations.assign(OLD_STEP)
    checkpoint = tf.train.Checkpoint(
        model=nested({key: v.value for key, v in variables.items()}),
        dense_optimizer=model.optimizer,
        sparse_optimizer=model.sparse_optimizer,
    )
    make_manager(checkpoint, config.model_dir, 0).save(OLD_STEP)
    return values


def test_checkpoint_keys_are_those_before_the_task_layer(tmp_path):
    config = planted_config(tmp_path)
    model = build_model(RunContext(config).specs.model)
    keys = flat(variable_tree(model))
    assert {k: tuple(v.shape) for k, v in keys.items()} == OLD_LAYOUT
    assert keys["0_FrequencyEstimator/v_step"] is (
        model.task.frequency_estimator.step.value
    )


def test_old_model_dir_resumes_and_exports(tmp_path):
    config = planted_config(tmp_path)
    values = write_old_model_dir(config)
    # Every variable reads back from its old key.
    model = build_model(RunContext(config).specs.model)
    restore(model, config.model_dir, with_optimizers=False)
    for key, variable in flat(variable_tree(model)).items():
        np.testing.assert_array_equal(variable.numpy(), values[key], key)

    train_and_evaluate(config)
    reader = tf.train.load_checkpoint(config.model_dir)

    def saved(key: str) -> np.ndarray:
        return reader.get_tensor(f"model/{key}/.ATTRIBUTES/VARIABLE_VALUE")

    # Resumed at step 3, not from scratch: two more steps, the estimator
    # counted on from the old step, and rows no batch touched are as
    # written (user ids are < 50 here).
    assert int(saved("0_FrequencyEstimator/v_step")) == OLD_ESTIMATOR_STEP + 2
    table = "1_EmbeddingGroup/0_EmbeddingTables/v_user_id_emb"
    np.testing.assert_array_equal(saved(table)[1000:], values[table][1000:])
    paths = export(RunContext(config), None, str(tmp_path / "export"))
    for side in ("user", "item"):
        assert (tmp_path / "export" / side / "saved_model.pb").is_file()
    assert set(paths) >= {"user", "item"}
