"""train_config.mixed_precision "BF16": bfloat16 tower MLPs, float32
weights and embeddings, in training and in the exported towers."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits

from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError
from easymatch.export.export_model import export, load_model
from easymatch.models.tower import MatchTower
from easymatch.run_context import RunContext
from easymatch.training.loop import train_and_evaluate


def tower(mixed_precision: str) -> MatchTower:
    layer = MatchTower(
        [3, 5],
        mlp={"hidden_units": [16, 8]},
        output_dim=4,
        similarity="COSINE",
        mixed_precision=mixed_precision,
    )
    layer.build((None, 8))
    return layer


def test_bf16_tower_matches_float32_within_bfloat16_precision():
    full, mixed = tower(""), tower("BF16")
    for source, target in zip(full.weights, mixed.weights, strict=True):
        target.assign(source)
    assert {w.dtype for w in mixed.weights} == {"float32"}
    assert mixed.mlp._blocks[0].compute_dtype == "bfloat16"
    x = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
    expected, _ = full(x)
    got, _ = mixed(x)
    assert got.dtype == tf.float32
    # bfloat16 keeps 8 bits of mantissa: close, but not float32-equal.
    np.testing.assert_allclose(got, expected, atol=0.03)
    assert np.abs(got - expected).max() > 1e-6


def test_fp16_is_rejected_with_the_field():
    with pytest.raises(ConfigError, match="train_config.mixed_precision"):
        load_pipeline_config(
            str(DEMO_CONFIG),
            json.dumps({"train_config.mixed_precision": "FP16"}),
        )


FRESH = textwrap.dedent(
    """
    import sys, numpy as np, tensorflow as tf
    user = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    inputs = dict(np.load(sys.argv[2], allow_pickle=True))
    out = user(**{k: tf.constant(v) for k, v in inputs.items()})
    emb = out["user_tower_emb"]
    assert emb.dtype == tf.float32, emb.dtype
    np.save(sys.argv[3], emb.numpy())
    """
)


def test_export_precision_unset_means_as_trained():
    config = load_pipeline_config(
        str(DEMO_CONFIG),
        json.dumps({"train_config.mixed_precision": "BF16"}),
    )
    assert config.export_config.mixed_precision == ""
    with pytest.raises(ConfigError, match="export_config.mixed_precision"):
        load_pipeline_config(
            str(DEMO_CONFIG),
            json.dumps(
                {
                    "train_config.mixed_precision": "BF16",
                    "export_config.mixed_precision": "FP16",
                }
            ),
        )


@pytest.mark.slow
def test_bf16_trains_and_exports(taobao_data, tmp_path):
    config = load_pipeline_config(
        str(DEMO_CONFIG),
        demo_edits(
            taobao_data,
            tmp_path / "model",
            **{"train_config.mixed_precision": "BF16"},
        ),
    )
    metrics = train_and_evaluate(config)
    assert np.isfinite(metrics["softmax_cross_entropy"])
    export(RunContext(config), None, str(tmp_path / "x"))
    user = tf.saved_model.load(str(tmp_path / "x" / "user"))
    specs = user.signatures["serving_default"].structured_input_signature[1]
    rows = pq.read_table(taobao_data / "eval.parquet").slice(0, 8)
    inputs = {
        name: np.array(
            rows[name].to_pylist(),
            object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype,
        )
        for name, spec in specs.items()
    }
    np.savez(tmp_path / "inputs.npz", **inputs)
    command = [sys.executable, "-c", FRESH, str(tmp_path / "x" / "user")]
    command += [str(tmp_path / "inputs.npz"), str(tmp_path / "emb.npy")]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    served = np.load(tmp_path / "emb.npy")

    run = RunContext(config)
    model = load_model(run, config.model_dir)
    features = run.feature_set
    users = features.subset(
        f.feature_name for f in features.features if f.side == "user"
    )
    columns = {name: tf.constant(values) for name, values in inputs.items()}
    expected = model.embed_users(users.transform(columns))[0].numpy()
    assert served.shape == expected.shape == (8, 32)
    np.testing.assert_allclose(served, expected, atol=1e-2)
