"""The recorded seed of the training samplers' streams (resume keeps it)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from test_negatives_pipeline import OPTIONS, sample_path, sampler_edits

from easymatch import side_inputs as keys
from easymatch.config import load_pipeline_config
from easymatch.errors import DataError
from easymatch.run_context import RunContext
from easymatch.training.loop import train_dataset_fn
from easymatch.training.sampler_streams import STREAMS_FILE, stream_seed


def test_first_run_records_the_seed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EASYMATCH_SEED", "11")
    # A worker that is not the chief records nothing.
    assert stream_seed(str(tmp_path), 2, record=False) == 11
    assert not (tmp_path / STREAMS_FILE).exists()
    assert stream_seed(str(tmp_path), 2, record=True) == 11
    recorded = json.loads((tmp_path / STREAMS_FILE).read_text())
    assert recorded == {"seed": 11, "num_workers": 2}


def test_resume_continues_the_recorded_streams(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("EASYMATCH_SEED", "11")
    stream_seed(str(tmp_path), 2, record=True)
    monkeypatch.setenv("EASYMATCH_SEED", "12")
    with caplog.at_level(logging.WARNING, logger="easymatch"):
        assert stream_seed(str(tmp_path), 3, record=True) == 11
    assert "seed 11, not 12" in caplog.text
    assert "recorded with 2 worker(s), now 3" in caplog.text
    # The record is not rewritten by a resumed run.
    recorded = json.loads((tmp_path / STREAMS_FILE).read_text())
    assert recorded == {"seed": 11, "num_workers": 2}


def test_a_damaged_record_is_named(tmp_path: Path) -> None:
    (tmp_path / STREAMS_FILE).write_text('{"seed": "x"}')
    with pytest.raises(DataError, match=STREAMS_FILE):
        stream_seed(str(tmp_path), 1, record=True)


def test_two_workers_draw_different_negatives_for_the_same_rows(
    taobao_data: Path, tmp_path: Path
) -> None:
    # Two identical files: worker 0 reads one, worker 1 the other, so both
    # see the same batches at the same steps; only their streams differ.
    for name in ("a", "b"):
        shutil.copy(taobao_data / "train.parquet", tmp_path / f"{name}.parquet")
    name = "dssm_negative_sampler_v2"
    edits = json.loads(
        sampler_edits(
            name,
            taobao_data,
            tmp_path / "model",
            **{"data_config.shuffle": False, **OPTIONS},
        )
    )
    edits["train_input_path"] = str(tmp_path / "*.parquet")

    def negatives(worker: int) -> list[tuple[list, list]]:
        config = load_pipeline_config(sample_path(name), json.dumps(edits))
        (tmp_path / "model").mkdir(exist_ok=True)
        dataset_fn = train_dataset_fn(RunContext(config), start_step=3)
        context = tf.distribute.InputContext(2, worker, 2)
        return [
            (
                batch[1][keys.ITEM_ID].numpy().tolist(),
                batch[1][keys.NEG_ITEM_ID].numpy().tolist(),
            )
            for batch in dataset_fn(context).take(2)
        ]

    first, second = negatives(0), negatives(1)
    for (ids, drawn), (ids_1, drawn_1) in zip(first, second, strict=True):
        assert ids == ids_1
        assert drawn != drawn_1
    # A rerun (or a resumed run at the same step) draws the same ones.
    assert negatives(1) == second
