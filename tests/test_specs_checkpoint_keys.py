"""Models built from specs keep the checkpoint keys of earlier runs.

The digests were taken from checkpoints written before the models were
built from specs (model and both optimizers: every key and shape), so an
existing model_dir of any sample or TorchEasyRec config still resumes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from test_specs import SAMPLES, TZREC_NAMES, tzrec_config

from easymatch import checkpoint
from easymatch.config import load_pipeline_config
from easymatch.data.item_counts import COUNTS_FILE, write_counts
from easymatch.run_context import RunContext

DIGESTS = {
    "benchmark_configs_taobao_dssm_taobao": "abec52e3c94c96b6",
    "dssm_demo": "f51cb898958f1109",
    "dssm_demo_vd": "1c4d6b9fe77c268f",
    "dssm_hard_negative_sampler": "f51cb898958f1109",
    "dssm_hard_negative_sampler_v2": "f51cb898958f1109",
    "dssm_mixed_negatives": "dae2f99208ca2096",
    "dssm_ml100k": "d7762ca2f6e69e73",
    "dssm_negative_sampler_v2": "f51cb898958f1109",
    "dssm_planted": "234b608400833c18",
    "dssm_taobao": "fac602f6a0b667a1",
    "dssm_v2_taobao": "1e7db2b28f60f002",
    "examples_dssm_taobao": "fac602f6a0b667a1",
    "examples_dssm_v2_taobao": "37df644683ac2223",
    "tests_configs_dssm_fg_hard_negative_mock": "3c7b70b9c5d60356",
    "tests_configs_dssm_fg_mock": "3c7b70b9c5d60356",
    "tests_configs_dssm_mock": "aedb434f744f77ee",
    "tests_configs_dssm_v2_fg_mock": "5fe9ec010fe05eca",
    "tests_configs_dssm_v2_mlpemb_fg_mock": "6039d54e50b7038e",
    "tests_configs_dssm_variational_dropout_mock": "ae14f34941bbaa17",
}


def checkpoint_keys(config, model_dir: Path) -> list[str]:
    """`<key> <shape>` of a fresh model's checkpoint, sorted."""
    config.model_dir = str(model_dir)
    run = RunContext(config)
    column = run.specs.retrieval.counts_column
    if column is not None:
        # logQ's counts as a first run leaves them (two items).
        os.makedirs(model_dir, exist_ok=True)
        write_counts(
            str(model_dir / COUNTS_FILE),
            np.array([b"1", b"2"], dtype=object),
            np.array([3, 4]),
            {"column": column, "train_input_path": config.train_input_path},
        )
    model = run.create_model()
    prefix = checkpoint.make_checkpoint(model).write(str(model_dir / "ckpt"))
    return sorted(
        f"{name} {shape}" for name, shape in tf.train.list_variables(prefix)
    )


def check(name: str, keys: list[str]) -> None:
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]
    assert digest == DIGESTS[name], "\n".join(keys)


def test_every_config_is_covered():
    names = {p.stem for p in SAMPLES} | set(TZREC_NAMES)
    assert names == set(DIGESTS)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_config_checkpoint_keys(path: Path, tmp_path: Path):
    config = load_pipeline_config(str(path))
    check(path.stem, checkpoint_keys(config, tmp_path / "model"))


@pytest.mark.parametrize("name", TZREC_NAMES)
def test_torcheasyrec_config_checkpoint_keys(name: str, tmp_path: Path):
    config = tzrec_config(name, tmp_path / "data")
    check(name, checkpoint_keys(config, tmp_path / "model"))
