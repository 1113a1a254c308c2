"""The run seed of a model_dir: drawn or from PYTHON_RANDOM_SEED, recorded
by the chief, kept on resume; it seeds the shuffle and the samplers."""

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
from easymatch.data.dataset import make_dataset
from easymatch.errors import ConfigError, DataError
from easymatch.run_context import RunContext
from easymatch.training.loop import train_dataset_fn
from easymatch.training.run_seed import (
    LEGACY_FILE,
    SEED_ENV,
    SEED_FILE,
    run_seed,
    shared_run_seed,
)


def _record(model_dir: Path) -> dict:
    return json.loads((model_dir / SEED_FILE).read_text())


def test_fresh_model_dirs_draw_and_record_different_seeds(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.delenv(SEED_ENV, raising=False)
    first, second = tmp_path / "a", tmp_path / "b"
    for model_dir in (first, second):
        model_dir.mkdir()
    # A worker that is not the chief records nothing.
    run_seed(str(first), record=False)
    assert not (first / SEED_FILE).exists()
    seeds = [run_seed(str(d), record=True) for d in (first, second)]
    assert seeds[0] != seeds[1]
    assert _record(first) == {
        "seed": seeds[0],
        "num_workers": 1,
        "source": "drawn",
    }
    # A rerun (a resume) takes the recorded seed instead of drawing.
    assert run_seed(str(first), record=True) == seeds[0]
    assert (
        shared_run_seed(tf.distribute.get_strategy(), str(second)) == (seeds[1])
    )


def test_the_environment_seeds_a_first_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(SEED_ENV, "11")
    assert run_seed(str(tmp_path), num_workers=2, record=True) == 11
    assert _record(tmp_path) == {
        "seed": 11,
        "num_workers": 2,
        "source": SEED_ENV,
    }


def test_resume_keeps_the_recorded_seed(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv(SEED_ENV, "11")
    run_seed(str(tmp_path), num_workers=2, record=True)
    monkeypatch.setenv(SEED_ENV, "12")
    with caplog.at_level(logging.WARNING, logger="easymatch"):
        assert run_seed(str(tmp_path), num_workers=3, record=True) == 11
    assert "run seed 11 recorded there, not PYTHON_RANDOM_SEED=12" in (
        caplog.text
    )
    assert "recorded with 2 worker(s), now 3" in caplog.text
    # The record is not rewritten by a resumed run.
    assert _record(tmp_path)["seed"] == 11
    assert _record(tmp_path)["num_workers"] == 2


def test_old_model_dirs_resume_their_streams(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(SEED_ENV, raising=False)
    # The samplers' record of runs before run seeds is folded in.
    legacy = tmp_path / "sampler"
    legacy.mkdir()
    (legacy / LEGACY_FILE).write_text('{"seed": 7, "num_workers": 1}')
    assert run_seed(str(legacy), record=True) == 7
    assert _record(legacy) == {
        "seed": 7,
        "num_workers": 1,
        "source": LEGACY_FILE,
    }
    # Checkpoints without a record: the shuffle and samplers used 0 (or
    # PYTHON_RANDOM_SEED), so the resumed run continues with it.
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-4"')
    assert run_seed(str(plain), record=True) == 0
    assert _record(plain)["source"] == "before run seeds"


def test_bad_seeds_are_one_line(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / SEED_FILE).write_text('{"seed": "x"}')
    with pytest.raises(DataError, match=SEED_FILE):
        run_seed(str(tmp_path), record=True)
    for text in ("-1", "abc", str(2**32)):
        monkeypatch.setenv(SEED_ENV, text)
        with pytest.raises(ConfigError, match=SEED_ENV):
            run_seed(str(tmp_path / "x"), record=False)


def _first_batches(data: Path, model_dir: Path) -> list[tuple[list, list]]:
    """The first training batches of model_dir: the positives' item ids
    (the shuffle's order) and the drawn negatives' ids."""
    name = "dssm_negative_sampler_v2"
    edits = sampler_edits(name, data, model_dir, **OPTIONS)
    config = load_pipeline_config(sample_path(name), edits)
    assert config.data_config.shuffle
    model_dir.mkdir(parents=True)
    seed = shared_run_seed(tf.distribute.get_strategy(), str(model_dir))
    dataset_fn = train_dataset_fn(RunContext(config, seed=seed), 0)
    context = tf.distribute.InputContext()
    return [
        (
            batch[1][keys.ITEM_ID].numpy().tolist(),
            batch[1][keys.NEG_ITEM_ID].numpy().tolist(),
        )
        for batch in dataset_fn(context).take(3)
    ]


def test_the_seed_orders_the_shuffle_and_the_draws(
    taobao_data: Path, tmp_path: Path, monkeypatch
) -> None:
    orders = {}
    for run, seed in (("a", "5"), ("b", "6"), ("c", "5")):
        monkeypatch.setenv(SEED_ENV, seed)
        orders[run] = _first_batches(taobao_data, tmp_path / run)
    assert orders["a"] == orders["c"]
    for (ids, drawn), (ids_b, drawn_b) in zip(
        orders["a"], orders["b"], strict=True
    ):
        assert ids != ids_b
        assert drawn != drawn_b


def test_evaluation_does_not_depend_on_the_seed(
    taobao_data: Path, tmp_path: Path
) -> None:
    name = "dssm_negative_sampler_v2"
    config = load_pipeline_config(
        sample_path(name),
        sampler_edits(name, taobao_data, tmp_path, **OPTIONS),
    )

    def eval_batches(seed: int) -> list:
        run = RunContext(config, seed=seed)
        dataset = make_dataset(
            run.reader(config.eval_input_path, training=False),
            run.transform,
            num_epochs=1,
            negatives=run.negatives(training=False),
        )
        return [
            batch[1][keys.NEG_ITEM_ID].numpy().tolist()
            for batch in dataset.take(2)
        ]

    assert eval_batches(5) == eval_batches(6)


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
        dataset_fn = train_dataset_fn(RunContext(config, seed=11), start_step=3)
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
