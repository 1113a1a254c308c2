"""model_dir records the input schema: eval and export need no training
data."""

from __future__ import annotations

import json
import shutil

import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits, run_cli

from easymatch.config import load_pipeline_config
from easymatch.export.export_model import export
from easymatch.export.input_schema import (
    INPUT_SAMPLE,
    INPUT_SCHEMA,
    type_from_name,
)
from easymatch.export.warmup import WARMUP_FILE
from easymatch.run_context import RunContext
from easymatch.training.loop import train_and_evaluate


@pytest.fixture(scope="module")
def trained(taobao_data, tmp_path_factory):
    """A 6-step run on a private copy of the data, which tests delete."""
    root = tmp_path_factory.mktemp("schema")
    data = root / "data"
    data.mkdir()
    for name in ("train.parquet", "eval.parquet"):
        shutil.copy(taobao_data / name, data / name)
    edits = demo_edits(data, root / "model", **{"train_config.num_steps": 6})
    config = load_pipeline_config(str(DEMO_CONFIG), edits)
    train_and_evaluate(config)
    return root, edits


def test_schema_records_the_training_columns(trained):
    root, _ = trained
    schema = json.loads((root / "model" / INPUT_SCHEMA).read_text())
    columns = schema["columns"]
    assert columns["user_id"] == "int64"
    assert columns["price"] == "double"
    assert columns["pid"] == "string"
    assert schema["int64_columns"]
    assert set(schema["int64_columns"]) <= {
        name for name, kind in columns.items() if kind == "int64"
    }
    assert (root / "model" / INPUT_SAMPLE).is_file()


def test_type_names_round_trip():
    import pyarrow as pa

    for kind in (pa.int32(), pa.uint8(), pa.float64(), pa.string()):
        assert type_from_name(str(kind)) == kind
    assert type_from_name(str(pa.decimal128(10, 2))) == pa.decimal128(10, 2)
    assert type_from_name("list<item: string>") is None


def signature_dtypes(path) -> dict[str, tf.DType]:
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    specs = serve.structured_input_signature[1]
    return {name: spec.dtype for name, spec in specs.items()}


@pytest.mark.slow
def test_eval_and_export_after_the_training_data_is_gone(trained):
    root, edits = trained
    config = load_pipeline_config(str(DEMO_CONFIG), edits)
    # As from a model_dir written before the schema was recorded: the
    # training data decides dtypes and warmup rows.
    model_dir = root / "model"
    for name in (INPUT_SCHEMA, INPUT_SAMPLE):
        (model_dir / name).rename(root / name)
    with_data = export(RunContext(config), None, str(root / "with_data"))
    for name in (INPUT_SCHEMA, INPUT_SAMPLE):
        (root / name).rename(model_dir / name)

    (root / "data" / "train.parquet").unlink()
    result = run_cli(
        "easymatch.eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["global_step"] == 6

    (root / "data" / "eval.parquet").unlink()
    without = export(RunContext(config), None, str(root / "without_data"))
    for side in ("user", "item"):
        assert signature_dtypes(without[side]) == signature_dtypes(
            with_data[side]
        )
        assert tf.int64 in signature_dtypes(without[side]).values()
        warmup = (root / "with_data" / side / WARMUP_FILE).read_bytes()
        assert (root / "without_data" / side / WARMUP_FILE).read_bytes() == (
            warmup
        )
