"""Exporters run after evaluations: versions, best metric, atomicity.

The towers themselves are stubbed here (test_export_towers covers them, and
test_cli_export_predict a real train_eval run with the best exporter).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_CONFIG

from easymatch.config import load_pipeline_config
from easymatch.errors import EasyMatchError
from easymatch.export import exporter as exporter_module
from easymatch.export.atomic import atomic_directory
from easymatch.export.exporter import (
    EVAL_RESULT,
    Exporter,
    make_exporter,
    versions,
)
from easymatch.run_context import RunContext


def demo_run(model_dir: Path, **export_fields) -> RunContext:
    edits = {"model_dir": str(model_dir)}
    edits.update({f"export_config.{k}": v for k, v in export_fields.items()})
    config = load_pipeline_config(str(DEMO_CONFIG), json.dumps(edits))
    return RunContext(config)


def stub_towers(model, run, directory, **kwargs):
    for side in ("user", "item"):
        os.makedirs(os.path.join(directory, side))
        Path(directory, side, "saved_model.pb").write_text(side)


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setattr(exporter_module, "write_towers", stub_towers)


def exported_metrics(exporter: Exporter, metric: str) -> list[float]:
    return [
        json.loads(
            Path(exporter.directory, str(version), EVAL_RESULT).read_text()
        )[metric]
        for version in versions(exporter.directory)
    ]


def assert_views_match(exporter: Exporter) -> None:
    """Each side's view links every version, and nothing else."""
    names = [str(v) for v in versions(exporter.directory)]
    for side in ("user", "item"):
        view = Path(exporter.directory, side)
        assert sorted(os.listdir(view)) == names
        for name in names:
            assert (view / name).is_symlink()
            assert (view / name / "saved_model.pb").read_text() == side


def test_best_exporter_keeps_the_best_metric_version(tmp_path, stubbed):
    run = demo_run(
        tmp_path, exporter_type="best", best_exporter_metric="recall@5"
    )
    exporter = Exporter(run, keep=2)
    sequence = [0.3, 0.2, 0.5, 0.5, 0.6, 0.1]
    exported = [
        exporter(None, 5 * (i + 1), {"recall@5": v, "recall@1": 0.0})
        for i, v in enumerate(sequence)
    ]
    assert [path is not None for path in exported] == [
        True,
        False,
        True,
        False,
        True,
        False,
    ]
    assert exported_metrics(exporter, "recall@5") == [0.5, 0.6]
    assert exporter.best_so_far() == 0.6
    newest = Path(exported[4], EVAL_RESULT)
    assert json.loads(newest.read_text())["global_step"] == 25
    assert_views_match(exporter)


def test_best_exporter_with_smaller_is_better(tmp_path, stubbed):
    run = demo_run(
        tmp_path,
        exporter_type="best",
        best_exporter_metric="softmax_cross_entropy",
        metric_larger_is_better=False,
    )
    exporter = Exporter(run)
    for step, loss in enumerate([2.0, 2.5, float("nan"), 1.0, 1.0]):
        exporter(None, step, {"softmax_cross_entropy": loss})
    metrics = exported_metrics(exporter, "softmax_cross_entropy")
    assert metrics == [2.0, 1.0]


def test_best_exporter_needs_its_metric(tmp_path, stubbed):
    run = demo_run(
        tmp_path, exporter_type="best", best_exporter_metric="recall@5"
    )
    with pytest.raises(EasyMatchError, match="'recall@5' is not in"):
        Exporter(run)(None, 1, {"recall@1": 0.5})


def test_latest_exporter_versions_increase_within_a_second(
    tmp_path, stubbed, monkeypatch
):
    monkeypatch.setattr(exporter_module.time, "time", lambda: 1700000000.5)
    exporter = make_exporter(demo_run(tmp_path, exporter_type="latest"))
    for step in range(7):
        exporter(None, step, {"recall@5": 0.0})
    assert exporter.directory == str(tmp_path / "export" / "latest")
    assert versions(exporter.directory) == list(range(1700000002, 1700000007))
    assert_views_match(exporter)


def test_no_exporter_without_export_config(tmp_path):
    assert make_exporter(demo_run(tmp_path)) is None


def test_crash_during_export_leaves_no_version(tmp_path, monkeypatch):
    def crash(model, run, directory, **kwargs):
        stub_towers(model, run, directory)
        raise RuntimeError("injected crash")

    exporter = Exporter(demo_run(tmp_path, exporter_type="latest"))
    monkeypatch.setattr(exporter_module, "write_towers", stub_towers)
    exporter(None, 1, {})
    monkeypatch.setattr(exporter_module, "write_towers", crash)
    with pytest.raises(RuntimeError, match="injected crash"):
        exporter(None, 2, {})
    assert len(versions(exporter.directory)) == 1
    assert sorted(os.listdir(exporter.directory)) == [
        str(versions(exporter.directory)[0]),
        "item",
        "user",
    ]
    assert_views_match(exporter)


def test_views_are_repaired_after_a_crash_before_linking(tmp_path, stubbed):
    exporter = Exporter(demo_run(tmp_path, exporter_type="latest"))
    orphan = Path(exporter.directory, "1000")
    stub_towers(None, None, str(orphan))
    os.makedirs(Path(exporter.directory, "user"))
    os.symlink("../999/user", Path(exporter.directory, "user", "999"))
    exporter(None, 1, {})
    assert versions(exporter.directory)[0] == 1000
    assert_views_match(exporter)


def test_tmp_directory_of_a_killed_process_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f"x.tmp-{dead.pid}"
    (leftover / "user").mkdir(parents=True)
    with atomic_directory(str(tmp_path / "y")) as tmp:
        Path(tmp, "done").write_text("")
    assert sorted(os.listdir(tmp_path)) == ["y"]
    assert (tmp_path / "y" / "done").exists()


def test_retrieval_view_links_versions_that_have_one(tmp_path, monkeypatch):
    """Only versions written with an item corpus have retrieval/."""
    with_retrieval = [False, True, True]

    def towers(model, run, directory, **kwargs):
        stub_towers(model, run, directory)
        if with_retrieval.pop(0):
            os.makedirs(os.path.join(directory, "retrieval"))

    monkeypatch.setattr(exporter_module, "write_towers", towers)
    exporter = Exporter(demo_run(tmp_path, exporter_type="latest"), keep=2)
    exporter(None, 1, {})
    assert not Path(exporter.directory, "retrieval").exists()
    exporter(None, 2, {})
    exporter(None, 3, {})
    names = [str(v) for v in versions(exporter.directory)]
    view = Path(exporter.directory, "retrieval")
    assert sorted(os.listdir(view)) == names
    target = os.path.join("..", names[0], "retrieval")
    assert os.readlink(view / names[0]) == target
    assert_views_match(exporter)
