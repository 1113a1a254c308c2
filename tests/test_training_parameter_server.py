"""Parameter-server training end to end: chief, 2 workers and 2 ps as
subprocesses on loopback (hand-written TF_CONFIG or easymatch.launch);
sharded tables, checkpoint → one process, export, resume with another
number of ps tasks, the non-finite guard (killed tasks:
test_training_ps_failures.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, run_cli
from ps_cluster import (
    CHIEF,
    cluster_jobs,
    ps_edits,
    result_steps,
    run_cluster,
    train_eval_args,
    worker_batches,
)
from serving import signature_rows

from easymatch.checkpoint import (
    checkpoint_path,
    make_checkpoint,
    restore,
    sublayers,
)
from easymatch.checkpoint.table_slots import tables_of
from easymatch.config import load_pipeline_config
from easymatch.export.export_model import load_model
from easymatch.layers import EmbeddingTables
from easymatch.run_context import RunContext

pytestmark = pytest.mark.slow


def _one_process_tables(config, step: int) -> dict[str, np.ndarray]:
    """The tables of the checkpoint at `step`, restored unsharded."""
    model = load_model(
        RunContext(config), checkpoint_path(config.model_dir, step)
    )
    tables = {}
    layers = [model]
    while layers:
        layer = layers.pop()
        if isinstance(layer, EmbeddingTables):
            assert not layer.sharded_tables
            tables.update(
                {
                    name: variable.numpy()
                    for name, variable in layer._variables_by_table.items()
                }
            )
        layers.extend(sublayers(layer))
    return tables


def test_hand_written_tf_config_shards_and_restores(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = ps_edits(taobao_data, model_dir)
    dump = tmp_path / "shards"
    status, log = run_cluster(
        cluster_jobs(),
        ["-c", CHIEF, str(DEMO_CONFIG), edits, str(dump)],
        edits,
        tmp_path / "logs",
    )
    assert status == 0, log[-3000:]
    assert result_steps(model_dir) == [5, 10, 12]
    # Each worker trained on batches of its own input; the checkpoint
    # counts them (training/ps_input.py).
    counts = worker_batches(checkpoint_path(str(model_dir), 12))
    assert counts.sum() == 12 and (counts > 0).all(), counts
    shards = json.loads(dump.with_suffix(".json").read_text())
    assert "user_id_emb" in shards and "cms_segid_emb" not in shards
    # Two half tables, one on each ps: no process holds a whole table.
    assert [shape for shape, _ in shards["user_id_emb"]] == [
        [1000, 16],
        [1000, 16],
    ]
    for table in shards.values():
        devices = [device for _, device in table]
        assert [d.split("/")[1] for d in devices] == ["job:ps", "job:ps"]
        assert {d.split("/")[3] for d in devices} == {"task:0", "task:1"}
    # The last checkpoint restores into one process: the same embeddings.
    config = load_pipeline_config(str(DEMO_CONFIG), edits)
    restored = _one_process_tables(config, 12)
    with np.load(dump.with_suffix(".npz")) as trained:
        assert set(trained.files) <= set(restored)
        for name in trained.files:
            np.testing.assert_array_equal(restored[name], trained[name])
    _one_process_resumes_with_slots(config, taobao_data, dump, shards)


def _one_process_slots(config, step: int) -> dict[str, np.ndarray]:
    """Every table's optimizer slots of the checkpoint at `step`, restored
    with the optimizers into a one-process model, by `table/slot`; also
    each optimizer's step count under "iterations/<optimizer>"."""
    model = RunContext(config).create_model()
    restore(model, checkpoint_path(config.model_dir, step))
    optimizer = model.sparse_optimizer
    slots = {
        f"{name}/{slot}": value.numpy()
        for name, _, table in tables_of(model, breadth_first=True)
        for slot, value in zip(
            optimizer.slot_names, optimizer.slot_variables(table), strict=True
        )
    }
    slots["iterations/sparse"] = optimizer.iterations.numpy()
    slots["iterations/dense"] = model.optimizer.iterations.numpy()
    return slots


def _one_process_resumes_with_slots(config, data, dump, shards) -> None:
    """A one-process run resumes the 2-ps checkpoint of step 12 with its
    optimizer state: every table's Adagrad accumulator, the sharded
    ones' read from `sharded_sparse_optimizer`, and the step counts."""
    restored = _one_process_slots(config, 12)
    assert restored["iterations/sparse"] == 12
    assert restored["iterations/dense"] == 12
    with np.load(f"{dump}_slots.npz") as trained:
        assert len(trained.files) == len(restored) - 2 == 18
        for name in trained.files:
            np.testing.assert_array_equal(restored[name], trained[name])
    reader = tf.train.load_checkpoint(checkpoint_path(config.model_dir, 12))
    # The sharded tables' slots are saved in their sharding order.
    for index, name in enumerate(shards):
        saved = reader.get_tensor(
            f"sharded_sparse_optimizer/{index}_accumulator/"
            ".ATTRIBUTES/VARIABLE_VALUE"
        )
        np.testing.assert_array_equal(restored[f"{name}/accumulator"], saved)
        assert saved.any(), name
    # Training continues in one process from those slots: accumulators
    # only grow, and rows no later step touched keep their value (a
    # reset would have zeroed them).
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        ps_edits(data, config.model_dir, **{"train_config.num_steps": 15}),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "restoring the embedding tables' optimizer slots table by table" in (
        result.stderr
    )
    assert result_steps(Path(config.model_dir))[-1] == 15
    continued = _one_process_slots(config, 15)
    assert continued["iterations/sparse"] == 15
    before = restored["user_id_emb/accumulator"]
    after = continued["user_id_emb/accumulator"]
    assert (after >= before).all() and (after > before).any()
    assert ((before > 0) & (after == before)).any()


# Both towers' embeddings of the same rows, with only tensorflow imported.
TF_ONLY = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    results = {}
    for root, rows, out in zip(*[iter(sys.argv[1:])] * 3):
        for side in ("user", "item"):
            serving = tf.saved_model.load(f"{root}/{side}").signatures[
                "serving_default"
            ]
            specs = serving.structured_input_signature[1]
            data = np.load(f"{rows}_{side}.npz", allow_pickle=True)
            inputs = {k: tf.constant(data[k], specs[k].dtype) for k in specs}
            results[f"{out}_{side}"] = serving(**inputs)[
                f"{side}_tower_emb"
            ].numpy()
    assert not [m for m in sys.modules if m.startswith("easymatch")]
    np.savez(sys.argv[-1], **results)
    """
)


def test_launch_exports_and_resumes_on_other_ps_count(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = ps_edits(
        taobao_data, model_dir, **{"export_config.exporter_type": "latest"}
    )
    result = run_cli(
        "easymatch.launch",
        "--num_workers",
        "2",
        "--num_ps",
        "2",
        "--",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = sorted(p.name for p in (model_dir / "logs").iterdir())
    assert logs == [
        "chief_0.log",
        "ps_0.log",
        "ps_1.log",
        "worker_0.log",
        "worker_1.log",
    ]
    assert "sharded over 2 ps" in (model_dir / "logs/chief_0.log").read_text()
    assert result_steps(model_dir) == [5, 10, 12]
    # Each ps writes its variables' part of a checkpoint, the chief its own.
    assert len(list(model_dir.glob("model.ckpt-12.data-*-of-00003"))) == 3
    for task in ("ps_0", "ps_1", "worker_0", "worker_1"):
        log = (model_dir / f"logs/{task}.log").read_text()
        assert "done serving; peak RSS" in log, task
    # The chief's export of step 12 and an export of the sharded
    # checkpoint by a one-process `easymatch.export` load in a TF-only
    # process and embed the same rows alike.
    chief_export = max(
        p for p in (model_dir / "export/latest").iterdir() if p.name.isdigit()
    )
    offline = tmp_path / "offline"
    result = run_cli(
        "easymatch.export",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
        "--checkpoint_path",
        str(checkpoint_path(str(model_dir), 12)),
        "--export_dir",
        str(offline),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pq.read_table(taobao_data / "eval.parquet")
    for side in ("user", "item"):
        np.savez(
            tmp_path / f"rows_{side}.npz",
            **signature_rows(chief_export, side, table),
        )
    out = tmp_path / "embeddings.npz"
    rows = str(tmp_path / "rows")
    subprocess.run(
        [sys.executable, "-c", TF_ONLY]
        + [str(chief_export), rows, "chief", str(offline), rows, "offline"]
        + [str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    with np.load(out) as embeddings:
        for side in ("user", "item"):
            chief = embeddings[f"chief_{side}"]
            assert chief.shape[0] == 8 and np.isfinite(chief).all()
            np.testing.assert_array_equal(chief, embeddings[f"offline_{side}"])
    # A restart with 3 ps continues from step 12, the tables resharded,
    # all but user_id_emb (128 kB, under the new shard_min_bytes), whose
    # Adagrad accumulator moves into the Keras optimizer; an evaluator
    # task (sidecar) evaluates instead of the chief.
    resumed = ps_edits(
        taobao_data,
        model_dir,
        **{
            "train_config.num_steps": 15,
            "train_config.shard_min_bytes": 200_000,
        },
    )
    result = run_cli(
        "easymatch.launch",
        "--num_workers",
        "1",
        "--num_ps",
        "3",
        "--evaluator",
        "--",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        resumed,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    chief_log = (model_dir / "logs/chief_0.log").read_text()
    assert "table campaign_id_emb [20000, 16] sharded over 3 ps" in chief_log
    assert "table user_id_emb" not in chief_log
    assert f"resuming from {model_dir}/model.ckpt-12" in chief_log
    assert "optimizer slots table by table" in chief_log
    assert "eval at step" not in chief_log
    assert result_steps(model_dir)[:3] == [5, 10, 12]
    assert result_steps(model_dir)[-1] == 15
    # Steps 13-15 grew the accumulator the 2-ps run had left.
    saved = tf.train.load_checkpoint(checkpoint_path(str(model_dir), 12))
    before = saved.get_tensor(
        "sharded_sparse_optimizer/0_accumulator/.ATTRIBUTES/VARIABLE_VALUE"
    )
    config = load_pipeline_config(str(DEMO_CONFIG), resumed)
    after = _one_process_slots(config, 15)["user_id_emb/accumulator"]
    assert before.shape == (2000, 16)
    assert (after >= before).all() and (after > before).any()
    assert ((before > 0) & (after == before)).any()


def _poison_new_users(config, step: int, first: int, last: int) -> None:
    """Sets to NaN, in the checkpoint at `step`, the user_id_emb rows of
    the users that the input's rows [first, last) bring and no earlier
    row has (the data is read unshuffled)."""
    users = pq.read_table(config.train_input_path, columns=["user_id"])
    users = users.column(0).to_pylist()
    new = sorted(set(users[first:last]) - set(users[:first]))
    assert new
    path = checkpoint_path(config.model_dir, step)
    model = RunContext(config).create_model()
    restore(model, path)
    [table] = [
        t.variable
        for t in tables_of(model, breadth_first=True)
        if t.name == "user_id_emb"
    ]
    value = table.numpy()
    value[new] = np.nan
    table.assign(value)
    make_checkpoint(model).write(path)


def test_non_finite_step_stops_before_its_checkpoint(taobao_data, tmp_path):
    """Also: a PS run resumes a one-process checkpoint with its optimizer
    slots."""
    model_dir = tmp_path / "model"
    options = {
        "data_config.shuffle": False,
        "train_config.save_checkpoints_steps": 4,
        "train_config.log_step_count_steps": 4,
    }
    # Two steps in one process first: the cluster resumes from them.
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        ps_edits(
            taobao_data, model_dir, **{**options, "train_config.num_steps": 2}
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    edits = ps_edits(taobao_data, model_dir, **options)
    config = load_pipeline_config(str(DEMO_CONFIG), edits)
    # Users first seen in the fifth batch (of 32 rows) have NaN
    # embeddings: that step's gradients are NaN, the sharded table's too.
    _poison_new_users(config, 2, 4 * 32, 5 * 32)
    status, log = run_cluster(
        cluster_jobs(num_workers=1),
        train_eval_args(edits),
        edits,
        tmp_path / "logs",
    )
    assert status == 2, log[-3000:]
    assert "optimizer slots table by table" in log
    # Named as the one-process guard names that table's gradient (its
    # Keras weight's path), the first in the guard's order.
    assert re.search(
        r"easymatch: error: step 5: non-finite training: loss terms "
        r"softmax_cross_entropy=nan, regularization=\S+; first non-finite: "
        r"gradient of embedding_tables/user_id_emb; the latest checkpoint "
        r"stays the one of step 4\n",
        log,
    ), log[-3000:]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
    # Steps 3 and 4 on the ps started from the one-process accumulators:
    # they only grew, and rows those steps did not touch kept theirs.
    one_process = tf.train.load_checkpoint(checkpoint_path(str(model_dir), 2))
    [key] = [
        name
        for name, shape in one_process.get_variable_to_shape_map().items()
        if name.startswith("sparse_optimizer/_variables/")
        and shape == [2000, 16]
    ]
    before = one_process.get_tensor(key)
    after = _one_process_slots(config, 4)["user_id_emb/accumulator"]
    assert (after >= before).all() and (after > before).any()
    assert ((before > 0) & (after == before)).any()
