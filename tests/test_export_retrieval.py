"""The retrieval SavedModel: user inputs → exact top-K items, stock ops."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits
from tensorflow_serving.apis import prediction_log_pb2

from easymatch import checkpoint as checkpoints
from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError, DataError, EasyMatchError
from easymatch.export.brute_force import exact_search
from easymatch.export.export_model import export, tower_features
from easymatch.export.inputs import to_signature_batch
from easymatch.export.predictor import TowerRunner
from easymatch.export.retrieval_model import (
    RetrievalExport,
    check_item_embeddings,
    chunked_top_k,
)
from easymatch.export.scann_index import ItemIndex
from easymatch.export.warmup import WARMUP_FILE
from easymatch.models.builder import build_model
from easymatch.run_context import RunContext

TOP_K = 20
USERS = 16

# Every op of the graph and of its function library, checked against the
# op registry of a process that imports nothing but tensorflow.
OP_CHECK = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    proto = saved_model_pb2.SavedModel()
    with open(sys.argv[1] + "/saved_model.pb", "rb") as f:
        proto.ParseFromString(f.read())
    ops = set(sys.argv[2:])
    for graph in proto.meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    loaded = sorted(
        m for m in sys.modules if m.split(".")[0] in ("scann", "easymatch")
    )
    unregistered = sorted(o for o in ops if op_def_registry.get(o) is None)
    print(json.dumps({"ops": sorted(ops), "unregistered": unregistered,
                      "loaded": loaded}))
    """
)


@pytest.fixture(scope="module")
def exported(taobao_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("retrieval")
    config = load_pipeline_config(
        str(DEMO_CONFIG), demo_edits(taobao_data, root / "model")
    )
    run = RunContext(config)
    features = run.feature_set
    model = build_model(run.specs.model)
    checkpoint = checkpoints.make_checkpoint(
        model, with_optimizers=False
    ).write(str(root / "model" / "model.ckpt-0"))
    paths = export(
        RunContext(config),
        checkpoint,
        str(root / "x"),
        item_input_path=str(taobao_data / "item.parquet"),
        top_k=TOP_K,
    )
    reader = run.reader(
        str(taobao_data / "eval.parquet"), training=False, batch_size=USERS
    )
    user_runner = TowerRunner(paths["user"])
    batch = to_signature_batch(next(reader.batches()), user_runner.dtypes)
    return {
        "config": config,
        "model": model,
        "features": features,
        "checkpoint": checkpoint,
        "paths": paths,
        "batch": batch,
        "user_runner": user_runner,
        "retrieval": tf.saved_model.load(paths["retrieval"]),
    }


def exact_ids(exported, batch, k: int = TOP_K):
    """Exact search with the exported user tower and the indexed items."""
    index = ItemIndex.load(exported["paths"]["item_index"])
    users = exported["user_runner"](batch)
    rows, scores = exact_search(np.asarray(index.embeddings), users, k)
    return index.ids[rows].astype(np.int64), scores


def run_op_check(directory: str, *extra_ops: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", OP_CHECK, directory, *extra_ops],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_only_stock_tensorflow_ops(exported):
    report = run_op_check(exported["paths"]["retrieval"], "ScannSearchBatched")
    # The made-up op shows the check rejects what plain TF lacks.
    assert report["unregistered"] == ["ScannSearchBatched"]
    assert report["loaded"] == []
    assert {"MatMul", "TopKV2", "ParseExampleV2"} <= set(report["ops"])
    assert {"While", "StatelessWhile"} & set(report["ops"])


def test_serving_default_equals_exact_search(exported):
    batch = exported["batch"]
    serve = exported["retrieval"].signatures["serving_default"]
    out = serve(**{k: tf.constant(v) for k, v in batch.inputs.items()})
    assert out["item_ids"].dtype == tf.int64
    assert out["item_ids"].shape == (USERS, TOP_K)
    ids, scores = exact_ids(exported, batch)
    np.testing.assert_array_equal(out["item_ids"].numpy(), ids)
    np.testing.assert_allclose(out["scores"].numpy(), scores, atol=1e-5)
    examples = exported["retrieval"].signatures["tf_example"](
        examples=tf.constant(batch.examples())
    )
    np.testing.assert_array_equal(examples["item_ids"].numpy(), ids)
    np.testing.assert_allclose(examples["scores"].numpy(), scores, atol=1e-5)


def test_saved_model_cli_runs_it(exported, tmp_path):
    rows = exported["batch"].take(slice(0, 3))
    exprs = ";".join(f"{k}={v.tolist()!r}" for k, v in rows.inputs.items())
    directory = exported["paths"]["retrieval"]
    command = ["saved_model_cli", "run", "--dir", directory]
    command += ["--tag_set", "serve", "--signature_def", "serving_default"]
    command += ["--input_exprs", exprs, "--outdir", str(tmp_path)]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ids, scores = exact_ids(exported, rows)
    np.testing.assert_array_equal(np.load(tmp_path / "item_ids.npy"), ids)
    np.testing.assert_allclose(
        np.load(tmp_path / "scores.npy"), scores, atol=1e-5
    )


def test_warmup_requests_run(exported):
    model = exported["retrieval"]
    path = Path(exported["paths"]["retrieval"], WARMUP_FILE)
    sizes = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        signature = model.signatures[request.model_spec.signature_name]
        inputs = {
            name: tf.constant(tf.make_ndarray(tensor))
            for name, tensor in request.inputs.items()
        }
        out = signature(**inputs)
        sizes.append((request.model_spec.signature_name, len(out["scores"])))
    assert sorted(sizes) == [
        ("serving_default", 1),
        ("serving_default", 4),
        ("tf_example", 1),
        ("tf_example", 4),
    ]


def test_text_ids_and_k_capped_at_the_corpus(exported, tmp_path):
    model = exported["model"]
    features = tower_features(model, exported["features"], "user")
    dtypes = exported["user_runner"].dtypes
    items = np.random.default_rng(0).standard_normal((3, 32)).astype("f4")
    ids = np.array(["b", "a", "c"], dtype=object)
    RetrievalExport(model, features, dtypes, ids, items, top_k=100).save(
        str(tmp_path / "r")
    )
    serve = tf.saved_model.load(str(tmp_path / "r")).signatures[
        "serving_default"
    ]
    batch = exported["batch"]
    out = serve(**{k: tf.constant(v) for k, v in batch.inputs.items()})
    users = exported["user_runner"](batch)
    order = np.argsort(-(users @ items.T), axis=1)
    assert out["item_ids"].dtype == tf.string
    assert out["item_ids"].numpy().astype(str).tolist() == (
        ids[order].astype(str).tolist()
    )


@pytest.mark.parametrize("budget", [1, 7, 50, 1 << 24])
def test_chunked_top_k_equals_one_top_k(budget):
    rng = np.random.default_rng(budget)
    items = rng.standard_normal((1003, 8)).astype(np.float32)
    queries = rng.standard_normal((5, 8)).astype(np.float32)
    values, rows = chunked_top_k(tf.constant(queries), items, 30, budget)
    full = queries @ items.T
    expected = np.argsort(-full, axis=1)[:, :30]
    np.testing.assert_array_equal(rows.numpy(), expected)
    np.testing.assert_allclose(
        values.numpy(), np.take_along_axis(full, expected, 1), rtol=1e-5
    )


def test_chunked_top_k_by_hand():
    items = np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], np.float32)
    queries = np.array([[2, 1], [-1, -2]], np.float32)
    # Scores [2, 1, 3, -2] and [-1, -2, -3, 1]; chunks of k = 2 items.
    values, rows = chunked_top_k(tf.constant(queries), items, 2, 1)
    assert rows.numpy().tolist() == [[2, 0], [3, 0]]
    assert values.numpy().tolist() == [[3, 2], [1, -1]]
    empty = chunked_top_k(tf.zeros([0, 2]), items, 2)
    assert empty[0].shape == (0, 2)


@pytest.mark.parametrize(
    "ids, embeddings, message",
    [
        (np.array([]), np.zeros((0, 2)), "item corpus is empty"),
        (np.array([4, 5, 4]), np.eye(3), "item id '4' occurs 2 times"),
        (
            np.array([4, 5, 6]),
            np.array([[0, 1], [np.nan, 0], [1, 1]]),
            r"item 5 \(corpus row 2\): its embedding is not finite",
        ),
    ],
)
def test_bad_item_tables(ids, embeddings, message):
    with pytest.raises(DataError, match=message):
        check_item_embeddings(ids, embeddings)


def test_index_is_tuned_on_the_user_tower_of_eval_rows(exported):
    info = json.loads(
        Path(exported["paths"]["item_index"], "index.json").read_text()
    )
    tuning = info["tuning"]
    eval_path = exported["config"].eval_input_path
    eval_rows = pq.read_metadata(eval_path).num_rows
    assert tuning["queries"] == {
        "source": f"user tower on eval rows of {eval_path}",
        "count": min(1000, eval_rows),
    }
    # 100 items: brute force, exact by construction.
    assert tuning["algorithm"] == "brute_force" and tuning["recall"] == 1.0
    assert tuning["target_recall"] == pytest.approx(0.95)


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"top_k": 0}, "top_k must be at least 1, got 0"),
        ({"target_recall": 1.01}, r"target recall must be in \(0, 1\]"),
    ],
)
def test_bad_flags_fail_before_exporting(exported, tmp_path, flags, message):
    with pytest.raises(EasyMatchError, match=message):
        export(
            RunContext(exported["config"]), None, str(tmp_path / "y"), **flags
        )
    assert not (tmp_path / "y").exists()


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("index_target_recall", 1.5, "1.5 is not in \\(0, 1\\]"),
        ("index_target_recall", 0.0, "0 is not in \\(0, 1\\]"),
        ("retrieval_top_k", 0, "0 is not at least 1"),
    ],
)
def test_bad_export_config(taobao_data, tmp_path, field, value, message):
    edit = {f"export_config.{field}": value}
    edits = demo_edits(taobao_data, tmp_path, **edit)
    with pytest.raises(ConfigError, match=f"export_config.{field}.*{message}"):
        load_pipeline_config(str(DEMO_CONFIG), edits)


def test_duplicate_corpus_ids_name_the_file(exported, taobao_data, tmp_path):
    items = pq.read_table(taobao_data / "item.parquet")
    doubled = pa.concat_tables([items, items.slice(3, 1)])
    corpus = tmp_path / "items.parquet"
    pq.write_table(doubled, corpus)
    first = items["adgroup_id"][3].as_py()
    with pytest.raises(
        DataError, match=f"{corpus}: item id '{first}' occurs 2 times"
    ):
        export(
            RunContext(exported["config"]),
            exported["checkpoint"],
            str(tmp_path / "y"),
            item_input_path=str(corpus),
        )
    assert not (tmp_path / "y").exists()
