"""Exported towers: stock-TF SavedModels that reproduce the model."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from easymatch.errors import EasyMatchError
from easymatch.export import export_model
from easymatch.export.export_model import export
from easymatch.export.inputs import SignatureBatch, to_signature_batch
from easymatch.export.predictor import TowerRunner, predict
from easymatch.export.scann_index import ItemIndex
from easymatch.export.warmup import WARMUP_FILE
from easymatch.features import FeatureSet
from easymatch.models.builder import build_model
from easymatch.models.match_model import MatchModel
from easymatch.run_context import RunContext

ROWS = 16


@dataclass
class Exported:
    config: object
    features: FeatureSet
    model: MatchModel
    checkpoint: str
    directory: Path
    columns: dict[str, np.ndarray]  # ROWS eval rows as the reader gives them
    runners: dict[str, TowerRunner] = field(default_factory=dict)
    # Checks outside this process, started at once to overlap the others.
    outside: dict[str, subprocess.Popen] = field(default_factory=dict)

    def expected(self, side: str, columns=None) -> np.ndarray:
        """The in-process model's embeddings of reader-format columns."""
        tensors = {
            name: tf.constant(values)
            for name, values in (columns or self.columns).items()
        }
        embed = getattr(self.model, f"embed_{side}s")
        return embed(self.features.transform(tensors))[0].numpy()

    def runner(self, side: str) -> TowerRunner:
        """The exported tower, loaded once per module."""
        if side not in self.runners:
            self.runners[side] = TowerRunner(str(self.directory / side))
        return self.runners[side]

    def signature_batch(self, side: str) -> SignatureBatch:
        return to_signature_batch(self.columns, self.runner(side).dtypes)


FRESH_PROCESS = textwrap.dedent(
    """
    import sys

    import numpy as np
    import tensorflow as tf

    root = sys.argv[1]
    results = {}
    for side in ("user", "item"):
        model = tf.saved_model.load(f"{root}/x/{side}")
        data = np.load(f"{root}/{side}.npz", allow_pickle=True)
        serving = model.signatures["serving_default"]
        specs = serving.structured_input_signature[1]
        inputs = {k: tf.constant(data[k], specs[k].dtype) for k in specs}
        output = f"{side}_tower_emb"
        results[side] = serving(**inputs)[output].numpy()
        examples = tf.constant(list(data["__examples__"]), tf.string)
        parsed = model.signatures["tf_example"](examples=examples)
        results[f"{side}_examples"] = parsed[output].numpy()
    assert not [m for m in sys.modules if m.startswith("easymatch")]
    np.savez(f"{root}/fresh.npz", **results)
    """
)


CLI_ROWS = 3


def saved_model_cli_run(
    directory: Path, signature: str, flag: str, value: str
) -> subprocess.Popen:
    """Writes <output>.npy into `cli_<user|item>` next to the export."""
    command = ["saved_model_cli", "run", "--dir", str(directory)]
    command += ["--tag_set", "serve", "--signature_def", signature]
    outdir = directory.parent.parent / f"cli_{directory.name}"
    command += [flag, value, "--outdir", str(outdir)]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_outside_checks(exported: Exported) -> None:
    """A fresh process importing only tensorflow runs both signatures of
    both towers; saved_model_cli (TF Serving's loading path: a session on
    the SignatureDefs) runs the user tower by raw columns and the item
    tower by tf.Example protos."""
    root = exported.directory
    for side in ("user", "item"):
        batch = exported.signature_batch(side)
        arrays = dict(batch.inputs)
        arrays["__examples__"] = np.array(batch.examples(), dtype=object)
        np.savez(root.parent / f"{side}.npz", **arrays)
    exported.outside["fresh"] = subprocess.Popen(
        [sys.executable, "-c", FRESH_PROCESS, str(root.parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=root.parent,
    )
    user = exported.signature_batch("user").take(slice(0, CLI_ROWS))
    exprs = ";".join(f"{k}={v.tolist()!r}" for k, v in user.inputs.items())
    item = exported.signature_batch("item").take(slice(0, CLI_ROWS))
    # saved_model_cli encodes str values itself.
    examples = [
        {
            name: [value.decode() if isinstance(value, bytes) else value]
            for name, value in (
                (name, values[row].item())
                for name, values in item.inputs.items()
            )
        }
        for row in range(CLI_ROWS)
    ]
    exported.outside["user"] = saved_model_cli_run(
        root / "user", "serving_default", "--input_exprs", exprs
    )
    exported.outside["item"] = saved_model_cli_run(
        root / "item",
        "tf_example",
        "--input_examples",
        f"examples={examples!r}",
    )


@pytest.fixture(scope="module")
def exported(taobao_data, tmp_path_factory) -> Iterator[Exported]:
    """The demo model, randomly initialized, checkpointed and exported."""
    root = tmp_path_factory.mktemp("export")
    config = load_pipeline_config(
        str(DEMO_CONFIG), demo_edits(taobao_data, root / "model")
    )
    run = RunContext(config)
    features = run.feature_set
    model = build_model(run.specs.model)
    checkpoint = checkpoints.make_checkpoint(
        model, with_optimizers=False
    ).write(str(root / "model" / "model.ckpt-0"))
    export(
        RunContext(config),
        checkpoint,
        str(root / "x"),
        item_input_path=str(taobao_data / "item.parquet"),
    )
    reader = run.reader(
        str(taobao_data / "eval.parquet"), training=False, batch_size=ROWS
    )
    columns = next(reader.batches())
    result = Exported(config, features, model, checkpoint, root / "x", columns)
    start_outside_checks(result)
    yield result
    for process in result.outside.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_towers_hold_only_their_own_variables(exported):
    for side in ("user", "item"):
        saved = tf.train.list_variables(
            str(exported.directory / side / "variables" / "variables")
        )
        saved_size = sum(
            int(np.prod(shape))
            for name, shape in saved
            if name.endswith("VARIABLE_VALUE")
        )
        tower = getattr(exported.model, f"{side}_tower")
        embedding = getattr(exported.model, f"{side}_embedding")
        model_size = sum(
            int(np.prod(w.shape)) for w in [*embedding.weights, *tower.weights]
        )
        assert saved_size == model_size


def test_warmup_records_parse_and_run(exported):
    for side in ("user", "item"):
        path = exported.directory / side / WARMUP_FILE
        model = exported.runner(side).loaded
        results = {}
        for record in tf.data.TFRecordDataset(str(path)):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = log.predict_log.request
            signature = model.signatures[request.model_spec.signature_name]
            inputs = {
                name: tf.constant(tf.make_ndarray(tensor))
                for name, tensor in request.inputs.items()
            }
            output = signature(**inputs)[f"{side}_tower_emb"].numpy()
            results[request.model_spec.signature_name, len(output)] = output
        assert sorted(results) == [
            ("serving_default", 1),
            ("serving_default", 4),
            ("tf_example", 1),
            ("tf_example", 4),
        ]
        # The synthetic data has no nulls: both signatures get the same
        # first training rows.
        np.testing.assert_allclose(
            results["serving_default", 4],
            results["tf_example", 4],
            atol=1e-6,
        )


def test_null_integers_and_floats_take_the_training_nulls(exported):
    columns = dict(exported.columns)
    for name in ("cms_segid", "cate_id"):
        # As text: the reader hands null-free integer columns over as int64.
        columns[name] = columns[name].astype(bytes).astype(object)
        columns[name][:3] = b""
    columns["price"] = columns["price"].copy()
    columns["price"][1:4] = np.nan
    for side in ("user", "item"):
        runner = exported.runner(side)
        batch = to_signature_batch(columns, runner.dtypes)
        assert not batch.complete_rows[:3].any()
        np.testing.assert_allclose(
            runner(batch), exported.expected(side, columns), atol=1e-5
        )


def test_item_index_holds_every_corpus_item(exported, taobao_data):
    items = pq.read_table(taobao_data / "item.parquet")
    index = ItemIndex.load(str(exported.directory / "item_index"))
    assert index.ids.tolist() == [str(i) for i in items["adgroup_id"]]
    runner = exported.runner("item")
    batch = to_signature_batch(
        {
            name: items[name]
            .to_numpy()
            .astype(np.float32 if dtype == tf.float32 else bytes)
            for name, dtype in runner.dtypes.items()
        },
        runner.dtypes,
    )
    np.testing.assert_allclose(index.embeddings, runner(batch), atol=1e-5)
    rows, _ = index.search_rows(index.embeddings[:5], 1)
    assert rows[:, 0].tolist() == [0, 1, 2, 3, 4]


def test_pipeline_config_is_saved_with_each_tower(exported):
    for side in ("user", "item"):
        saved = load_pipeline_config(
            str(exported.directory / side / "pipeline.config")
        )
        assert saved == exported.config


def test_predict_writes_reserved_columns_and_embeddings(exported, tmp_path):
    path = predict(
        str(exported.directory / "item"),
        exported.config.eval_input_path,
        str(tmp_path / "out"),
        reserved_columns=["adgroup_id", "pid"],
        batch_size=ROWS // 4,
        predict_steps=4,
    )
    table = pq.read_table(path)
    assert table.column_names == ["adgroup_id", "pid", "item_tower_emb"]
    assert str(table.schema.field("adgroup_id").type) == "int64"
    embedding_type = table.schema.field("item_tower_emb").type
    assert embedding_type.value_type == pa.float32()
    assert table.num_rows == ROWS
    source = pq.read_table(exported.config.eval_input_path).slice(0, ROWS)
    assert table["adgroup_id"].equals(source["adgroup_id"])
    embeddings = np.array(table["item_tower_emb"].to_pylist())
    np.testing.assert_allclose(embeddings, exported.expected("item"), atol=1e-5)


def test_predict_rejects_unknown_output_column(exported, tmp_path):
    with pytest.raises(EasyMatchError, match="not an output"):
        predict(
            str(exported.directory / "user"),
            exported.config.eval_input_path,
            str(tmp_path / "out"),
            output_columns=["item_tower_emb"],
        )


def test_crash_mid_export_leaves_no_directory(exported, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("injected crash")

    monkeypatch.setattr(export_model, "write_warmup", crash)
    # Only the writing matters here, not loading the checkpoint again.
    monkeypatch.setattr(export_model, "load_model", lambda *_: exported.model)
    target = exported.directory.parent / "crashed"
    with pytest.raises(RuntimeError, match="injected crash"):
        export(RunContext(exported.config), exported.checkpoint, str(target))
    assert not target.exists()
    assert not list(exported.directory.parent.glob("crashed*"))


def test_existing_export_dir_is_an_error(exported):
    with pytest.raises(EasyMatchError, match="already exists"):
        export(
            RunContext(exported.config),
            exported.checkpoint,
            str(exported.directory),
        )


def test_best_checkpoint_is_selected_by_the_eval_results(exported, tmp_path):
    config = type(exported.config)()
    config.CopyFrom(exported.config)
    config.model_dir = str(tmp_path)
    config.export_config.exporter_type = "best"
    config.export_config.best_exporter_metric = "softmax_cross_entropy"
    config.export_config.metric_larger_is_better = False
    for step, loss in ((5, 2.0), (10, 1.5), (12, 1.7), (15, float("nan"))):
        (tmp_path / f"model.ckpt-{step}.index").write_text("")
        checkpoints.append_eval_result(
            str(tmp_path), step, {"softmax_cross_entropy": loss}
        )
    # The evaluator's record of a step it never evaluated has no metric.
    checkpoints.append_eval_result(str(tmp_path), 7, {"skipped": "deleted"})
    (tmp_path / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt-15"\n'
    )
    select = export_model.select_checkpoint
    assert select(config, None) == str(tmp_path / "model.ckpt-10")
    # keep_checkpoint_max removed it: the best of those left.
    (tmp_path / "model.ckpt-10.index").unlink()
    assert select(config, None) == str(tmp_path / "model.ckpt-12")
    config.export_config.exporter_type = "latest"
    assert select(config, None) == str(tmp_path / "model.ckpt-15")
    path = str(tmp_path / "model.ckpt-5")
    assert select(config, path) == path


def finished(process: subprocess.Popen) -> None:
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]


def test_fresh_tensorflow_process_reproduces_embeddings(exported):
    finished(exported.outside["fresh"])
    loaded = np.load(exported.directory.parent / "fresh.npz")
    for side in ("user", "item"):
        expected = exported.expected(side)
        assert expected.shape == (ROWS, 32)
        np.testing.assert_allclose(loaded[side], expected, atol=1e-5)
        np.testing.assert_allclose(
            loaded[f"{side}_examples"], expected, atol=1e-5
        )


def test_saved_model_cli_runs_both_signatures(exported):
    for side in ("user", "item"):
        finished(exported.outside[side])
        output = np.load(
            exported.directory.parent / f"cli_{side}" / f"{side}_tower_emb.npy"
        )
        np.testing.assert_allclose(
            output, exported.expected(side)[:CLI_ROWS], atol=1e-5
        )
