"""train_eval's best exporter, then the export and predict CLIs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits, run_cli

from easymatch.export.exporter import EVAL_RESULT, versions


@pytest.fixture(scope="module")
def trained(taobao_data, tmp_path_factory) -> Path:
    """A tiny train_eval run (evaluations at steps 5 and 10) with the best
    exporter on recall@5."""
    model_dir = tmp_path_factory.mktemp("cli") / "model"
    edits = demo_edits(
        taobao_data,
        model_dir,
        **{
            "train_config.num_steps": 10,
            "export_config.exporter_type": "best",
            "export_config.best_exporter_metric": "recall@5",
        },
    )
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    )
    assert result.returncode == 0, result.stderr
    return model_dir


def eval_results(model_dir: Path) -> list[dict]:
    lines = (model_dir / "train_eval_result_v2.txt").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_best_exporter_during_training(trained):
    results = eval_results(trained)
    assert [r["global_step"] for r in results] == [5, 10]
    directory = trained / "export" / "best"
    exported = versions(str(directory))
    assert exported
    newest = json.loads(
        (directory / str(exported[-1]) / EVAL_RESULT).read_text()
    )
    assert newest["recall@5"] == max(r["recall@5"] for r in results)
    for side in ("user", "item"):
        view = directory / side / str(exported[-1])
        assert (view / "saved_model.pb").is_file()
        assert (view / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_export_then_predict(trained, taobao_data, tmp_path):
    results = eval_results(trained)
    best = max(results, key=lambda r: (r["recall@5"], r["global_step"]))
    export_dir = tmp_path / "x"
    result = run_cli(
        "easymatch.export",
        "--pipeline_config_path",
        str(trained / "pipeline.config"),
        "--export_dir",
        str(export_dir),
    )
    assert result.returncode == 0, result.stderr
    assert re.search(rf"model\.ckpt-{best['global_step']}\b", result.stderr)
    assert f"user: {export_dir / 'user'}" in result.stdout

    output = tmp_path / "user_emb"
    result = run_cli(
        "easymatch.predict",
        "--scripted_model_path",
        str(export_dir / "user"),
        "--predict_input_path",
        str(taobao_data / "eval.parquet"),
        "--predict_output_path",
        str(output),
        "--reserved_columns",
        "user_id",
        "--batch_size",
        "100",
    )
    assert result.returncode == 0, result.stderr
    table = pq.read_table(output / "part-0.parquet")
    source = pq.read_table(taobao_data / "eval.parquet")
    assert table.column_names == ["user_id", "user_tower_emb"]
    assert table["user_id"].equals(source["user_id"])
    # The same rows fed straight from Arrow into the SavedModel.
    serving = tf.saved_model.load(str(export_dir / "user")).signatures[
        "serving_default"
    ]
    specs = serving.structured_input_signature[1]
    rows = source.slice(0, 50)
    inputs = {
        name: tf.constant(rows[name].to_pylist(), spec.dtype)
        for name, spec in specs.items()
    }
    expected = serving(**inputs)["user_tower_emb"].numpy()
    predicted = np.array(table["user_tower_emb"].to_pylist()[:50])
    np.testing.assert_allclose(predicted, expected, atol=1e-6)


def test_predict_error_is_one_line(tmp_path):
    result = run_cli(
        "easymatch.predict",
        "--scripted_model_path",
        str(tmp_path / "missing"),
        "--predict_input_path",
        "x.parquet",
        "--predict_output_path",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("easymatch: error: ")
    assert "pipeline.config: not found" in line
