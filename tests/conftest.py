"""Shared fixtures: tiny generated Taobao-style data and configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from gen_taobao_data import generate  # noqa: E402

DEMO_CONFIG = ROOT / "samples" / "dssm_demo.config"


@pytest.fixture(scope="session")
def taobao_data(tmp_path_factory) -> Path:
    """2k train rows over 200 users and 100 items, sampler tables included."""
    output = tmp_path_factory.mktemp("taobao")
    generate(str(output), num_users=200, num_items=100, num_rows=2000, seed=7)
    return output


@pytest.fixture(scope="session")
def served_export(taobao_data, tmp_path_factory) -> dict:
    """An export with an item index, for the easymatch.serve tests."""
    from serving import make_served_export

    root = tmp_path_factory.mktemp("serve_export")
    return make_served_export(taobao_data, root)


def demo_edits(data: Path, model_dir: Path, **extra) -> str:
    """--edit_config_json that points the demo config at tiny data."""
    edits = {
        "train_input_path": str(data / "train.parquet"),
        "eval_input_path": str(data / "eval.parquet"),
        "model_dir": str(model_dir),
        "data_config.batch_size": 32,
        "train_config.num_epochs": 0,
        "train_config.num_steps": 12,
        "train_config.save_checkpoints_steps": 5,
        "train_config.log_step_count_steps": 5,
        "eval_config.num_steps": 3,
    }
    edits.update(extra)
    return json.dumps(edits)


def run_cli(module: str, *args: str, timeout: int = 600):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
