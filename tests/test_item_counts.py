"""Exact item counts: one pass, a file in model_dir, reused on resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits
from test_training_resume import variables

from easymatch.config import load_pipeline_config
from easymatch.data import item_counts
from easymatch.data.dataset import hash_ids
from easymatch.errors import DataError
from easymatch.run_context import RunContext
from easymatch.training.loop import train_and_evaluate


def planted_config(tmp_path, items: list[int], **edits):
    path = tmp_path / "train.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(range(len(items)), pa.int64()),
                "item_id": pa.array(items, pa.int64()),
                "label": [1.0] * len(items),
            }
        ),
        path,
    )
    return load_pipeline_config(
        str(ROOT / "samples" / "dssm_planted.config"),
        json.dumps(
            {
                "train_input_path": str(path),
                "model_dir": str(tmp_path / "model"),
                **edits,
            }
        ),
    )


def load_or_count(config) -> dict | None:
    run = RunContext(config)
    return item_counts.load_or_count(
        run.specs,
        run.feature_set,
        train_input_path=config.train_input_path,
        model_dir=config.model_dir,
    )


def as_dict(counts: dict) -> dict[int, int]:
    return dict(zip(counts["item_ids"], counts["counts"], strict=True))


def hashed(*ids: str) -> list[int]:
    return hash_ids(tf.constant(list(ids))).numpy().tolist()


def test_counts_written_once_then_read(tmp_path):
    config = planted_config(tmp_path, [4, 2, 4, 4, 8, 2])
    first = load_or_count(config)
    h4, h2, h8 = hashed("4", "2", "8")
    assert as_dict(first) == {h4: 3, h2: 2, h8: 1}
    path = tmp_path / "model" / item_counts.COUNTS_FILE
    ids, counts, meta = item_counts.read_counts(str(path))
    assert ids.tolist() == [b"2", b"4", b"8"] and counts.tolist() == [2, 3, 1]
    assert meta == {
        "column": "item_id",
        "train_input_path": str(tmp_path / "train.parquet"),
    }
    # The file, not the input, is read from now on: edit it and see.
    item_counts.write_counts(str(path), ids, np.array([1, 5, 1]), meta)
    again = load_or_count(config)
    assert as_dict(again) == {h4: 5, h2: 1, h8: 1}


def test_no_counts_when_nothing_reads_them(tmp_path):
    streaming = planted_config(
        tmp_path,
        [1, 2],
        **{"model_config.dssm.candidate_probability": {"streaming": {}}},
    )
    uncorrected = planted_config(
        tmp_path, [1, 2], **{"model_config.dssm.logq_correction": False}
    )
    for config in (streaming, uncorrected):
        assert load_or_count(config) is None
    assert not (tmp_path / "model").exists()


def test_bad_counts_files_are_one_line_errors(tmp_path):
    config = planted_config(tmp_path, [1, 2])
    os.makedirs(tmp_path / "model")
    path = tmp_path / "model" / item_counts.COUNTS_FILE
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable item counts file"):
        load_or_count(config)
    item_counts.write_counts(
        str(path),
        np.array([b"1"], dtype=object),
        np.array([1]),
        {"column": "other", "train_input_path": config.train_input_path},
    )
    with pytest.raises(DataError, match="counted column 'other'"):
        load_or_count(config)


def train(data, model_dir, num_steps: int) -> None:
    config = load_pipeline_config(
        str(DEMO_CONFIG),
        demo_edits(
            data,
            model_dir,
            **{
                "train_config.num_steps": num_steps,
                "train_config.save_checkpoints_steps": 4,
                "data_config.shuffle": False,
                "eval_input_path": "",
                "model_config.dssm.logq_correction": True,
                "model_config.dssm.item_id_field": "adgroup_id",
            },
        ),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHON_RANDOM_SEED", "3")
        train_and_evaluate(config)


@pytest.mark.slow
def test_resume_reuses_the_counts_file(taobao_data, tmp_path):
    train(taobao_data, tmp_path / "straight", 8)
    train(taobao_data, tmp_path / "resumed", 4)
    path = tmp_path / "resumed" / item_counts.COUNTS_FILE
    written = os.stat(path)
    train(taobao_data, tmp_path / "resumed", 8)
    again = os.stat(path)
    # Not rewritten (a rewrite replaces the file: a new inode).
    assert (again.st_ino, again.st_mtime_ns) == (
        written.st_ino,
        written.st_mtime_ns,
    )
    straight = variables(tmp_path / "straight")
    resumed = variables(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    # Exact counts add no variables to the checkpoint.
    assert not any("Frequency" in name for name in straight)
    for name in straight:
        np.testing.assert_allclose(
            resumed[name], straight[name], rtol=1e-5, atol=1e-6, err_msg=name
        )
