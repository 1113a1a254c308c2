"""tools/feature_importance.py: keep probabilities learned by variational
dropout, read back from a trained model_dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits
from gen_taobao_data import generate

from easymatch.config import load_pipeline_config
from easymatch.data.synthetic import INFORMATIVE_USER_COLUMNS, NOISE_COLUMNS
from easymatch.training.loop import train_and_evaluate

TOOL = ROOT / "tools" / "feature_importance.py"
VD_CONFIG = ROOT / "samples" / "dssm_demo_vd.config"


def run_tool(model_dir) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(TOOL), "--model_dir", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
    )


def parse_tables(stdout: str) -> dict[str, list[tuple[str, float]]]:
    """Tower → [(feature, keep probability)] in printed order."""
    tables: dict[str, list[tuple[str, float]]] = {}
    rows: list[tuple[str, float]] = []
    for line in stdout.splitlines():
        if line.endswith(" tower"):
            rows = tables.setdefault(line.split()[0], [])
        elif line and not line.lstrip().startswith("rank"):
            _, rest = line.split(maxsplit=1)
            name, keep = rest.rsplit(maxsplit=1)
            rows.append((name.strip(), float(keep)))
    return tables


def test_tool_prints_the_checkpoints_keep_probabilities(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = json.loads(demo_edits(taobao_data, model_dir))
    edits.update(
        {
            "model_config.variational_dropout": {},
            "train_config.num_steps": 3,
            "train_config.save_checkpoints_steps": 3,
            "eval_config.num_steps": 1,
        }
    )
    train_and_evaluate(
        load_pipeline_config(str(DEMO_CONFIG), json.dumps(edits))
    )
    result = run_tool(model_dir)
    assert result.returncode == 0, result.stderr
    tables = parse_tables(result.stdout)
    assert list(tables) == ["user", "item"]
    user = dict(tables["user"])
    assert len(user) == 11
    assert "user_seq_encoder_0 (click_50_seq)" in user
    for rows in tables.values():
        keeps = [keep for _, keep in rows]
        assert keeps == sorted(keeps, reverse=True)
    # The printed values are the checkpoint's, not a fresh initialisation.
    reader = tf.train.load_checkpoint(str(model_dir))
    item_p = reader.get_tensor(
        "model/3_MatchTower/0_VariationalDropout/v_feature_p/"
        ".ATTRIBUTES/VARIABLE_VALUE"
    )
    expected = sorted(1.0 / (1.0 + np.exp(item_p)), reverse=True)
    np.testing.assert_allclose(
        [keep for _, keep in tables["item"]], expected, atol=1e-4
    )


def test_tool_explains_a_model_without_variational_dropout(
    taobao_data, tmp_path
):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "pipeline.config").write_text(DEMO_CONFIG.read_text())
    result = run_tool(model_dir)
    assert result.returncode == 2
    assert "variational_dropout is not set" in result.stderr


@pytest.mark.slow
def test_planted_informative_user_columns_rank_first(tmp_path):
    data = tmp_path / "data"
    generate(
        str(data), num_users=20000, num_items=1000, num_rows=100000, seed=3
    )
    edits = {
        "train_input_path": str(data / "train.parquet"),
        "eval_input_path": str(data / "eval.parquet"),
        "model_dir": str(tmp_path / "model"),
        "train_config.save_checkpoints_steps": 100000,
        "eval_config.num_steps": 2,
    }
    config = load_pipeline_config(str(VD_CONFIG), json.dumps(edits))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHON_RANDOM_SEED", "0")
        train_and_evaluate(config)
    result = run_tool(tmp_path / "model")
    assert result.returncode == 0, result.stderr
    user = parse_tables(result.stdout)["user"]
    informative = set(INFORMATIVE_USER_COLUMNS)
    assert {name for name, _ in user[: len(informative)]} == informative
    assert {name for name, _ in user[len(informative) :]} == set(NOISE_COLUMNS)
