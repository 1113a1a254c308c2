"""The step loop's schedule and the hooks, each on its own."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, demo_edits

from easymatch.config import load_pipeline_config
from easymatch.export.exporter import make_exporter, versions
from easymatch.features import builder as features_builder
from easymatch.run_context import RunContext
from easymatch.training.hooks import (
    Hook,
    LoggingHook,
    ProgressHook,
    TensorBoardHook,
    TrainState,
)
from easymatch.training.loop import Trainer, default_hooks, train_and_evaluate


class Recorder(Hook):
    """Records every call it gets."""

    def __init__(self, chief_only: bool = False) -> None:
        self.chief_only = chief_only
        self.calls: list[tuple] = []

    def on_train_begin(self, state):
        self.calls.append(("begin", state.start_step))

    def after_steps(self, state, step, logs):
        self.calls.append(("steps", step, None if logs is None else "logs"))

    def on_checkpoint(self, state, step):
        self.calls.append(("checkpoint", step))

    def after_evaluation(self, state, step, metrics):
        self.calls.append(("evaluation", step))

    def on_train_end(self, state, step):
        self.calls.append(("end", step))


def demo_config(data, model_dir, **edits):
    return load_pipeline_config(
        str(DEMO_CONFIG), demo_edits(data, model_dir, **edits)
    )


def train_with(config, extra: list[Hook], is_chief: bool = True) -> dict:
    """Trains with the default hooks and `extra` after them."""
    run = RunContext(config)
    hooks = [*default_hooks(config), *extra]
    return Trainer(run, run.create_model(), hooks, is_chief=is_chief).train()


def test_loop_calls_stop_at_log_save_and_last_steps(taobao_data, tmp_path):
    """12 steps, 4 a call, logs every 5, saves every 5: calls end at
    4, 5, 9, 10, 12; checkpoints (each evaluated) at 5, 10, 12. The
    evaluation hook, listed before the recorder, evaluates (and so calls
    every `after_evaluation`) in its own `on_checkpoint`."""
    config = demo_config(
        taobao_data,
        tmp_path / "model",
        **{"train_config.steps_per_execution": 4},
    )
    recorder, chief_only = Recorder(), Recorder(chief_only=True)
    metrics = train_with(config, [recorder, chief_only])
    assert recorder.calls == [
        ("begin", 0),
        ("steps", 4, None),
        ("steps", 5, "logs"),
        ("evaluation", 5),
        ("checkpoint", 5),
        ("steps", 9, None),
        ("steps", 10, "logs"),
        ("evaluation", 10),
        ("checkpoint", 10),
        ("steps", 12, "logs"),
        ("evaluation", 12),
        ("checkpoint", 12),
        ("end", 12),
    ]
    assert chief_only.calls == recorder.calls
    lines = (tmp_path / "model" / "train_eval_result_v2.txt").read_text()
    last = json.loads(lines.splitlines()[-1])
    assert last.pop("global_step") == 12
    assert last == metrics


def test_non_chief_skips_chief_only_hooks(taobao_data, tmp_path):
    config = demo_config(
        taobao_data,
        tmp_path / "model",
        **{"train_config.num_steps": 3, "eval_input_path": ""},
    )
    everyone, chief = Recorder(), Recorder(chief_only=True)
    train_with(config, [everyone, chief], is_chief=False)
    assert chief.calls == []
    assert everyone.calls[-2:] == [("checkpoint", 3), ("end", 3)]
    # A non-chief writes no pipeline.config (RunFilesHook is chief-only).
    assert not (tmp_path / "model" / "pipeline.config").exists()
    assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith("-3")


@pytest.mark.slow
def test_finished_run_returns_its_recorded_evaluation(taobao_data, tmp_path):
    """Restarting a finished run trains nothing and evaluates nothing: it
    returns the evaluation recorded for the last checkpoint."""
    config = demo_config(taobao_data, tmp_path / "model")
    first = train_and_evaluate(config)
    log = tmp_path / "model" / "train_eval_result_v2.txt"
    recorded = log.read_text()
    again = train_and_evaluate(config)
    assert again == first
    assert log.read_text() == recorded


def state(model_dir, last_step: int = 12) -> TrainState:
    """A TrainState for hooks that read only model_dir and last_step."""
    run = SimpleNamespace(config=SimpleNamespace(model_dir=str(model_dir)))
    return TrainState(run=run, model=None, last_step=last_step, hooks=[])


def test_logging_hook_logs_at_logging_steps_only(caplog):
    hook = LoggingHook()
    with caplog.at_level(logging.INFO, logger="easymatch"):
        hook.after_steps(state("unused"), 4, None)
        hook.after_steps(state("unused"), 5, {"loss": 0.5, "recall@5": 0.25})
        hook.after_evaluation(state("unused"), 5, {"recall@5": 0.5})
    assert [r.getMessage() for r in caplog.records] == [
        "step 5/12: loss=0.5 recall@5=0.25",
        "eval at step 5: {'recall@5': 0.5}",
    ]


def test_progress_hook_breaks_the_line_before_a_log(capsys):
    hook = ProgressHook(interactive=True)
    hook.on_train_begin(state("unused"))
    hook.after_steps(state("unused"), 4, None)
    before = capsys.readouterr().out
    hook.after_steps(state("unused"), 5, {"loss": 1.0})
    assert not before.endswith("\n")
    assert capsys.readouterr().out.endswith("\n")


def scalars(directory) -> dict[tuple[str, int], float]:
    values = {}
    for path in tf.io.gfile.glob(f"{directory}/events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                number = tf.make_ndarray(value.tensor)
                values[(value.tag, event.step)] = float(number)
    return values


def test_tensorboard_hook_writes_train_and_eval_scalars(tmp_path):
    hook = TensorBoardHook()
    hook.on_train_begin(state(tmp_path))
    hook.after_steps(state(tmp_path), 4, None)
    hook.after_steps(state(tmp_path), 5, {"loss": 0.5})
    hook.after_evaluation(state(tmp_path), 5, {"recall@5": 0.25})
    hook.on_train_end(state(tmp_path), 5)
    assert scalars(tmp_path / "train") == {("loss", 5): 0.5}
    assert scalars(tmp_path / "eval") == {("recall@5", 5): 0.25}


class RunSeen(Hook):
    """Keeps the run context the trainer hands to hooks."""

    def on_train_begin(self, state):
        self.run = state.run


def test_one_run_context_serves_training_evaluation_and_export(
    taobao_data, tmp_path, monkeypatch
):
    """The feature set is built once per run; the exporter gets the
    trainer's run context instead of deriving its own."""
    # Every build_feature_set, whoever calls it, walks the features once.
    built = []
    walk = features_builder.iter_features

    def counted(config):
        built.append(config.model_dir)
        return walk(config)

    monkeypatch.setattr(features_builder, "iter_features", counted)
    config = demo_config(
        taobao_data,
        tmp_path / "model",
        **{
            "train_config.num_steps": 5,
            "export_config.exporter_type": "latest",
        },
    )
    exporters = []

    def exporter_of(run):
        exporters.append(make_exporter(run))
        return exporters[-1]

    seen = RunSeen()
    train_and_evaluate(config, make_exporter=exporter_of, extra_hooks=[seen])
    assert built == [str(tmp_path / "model")]
    (exporter,) = exporters
    assert exporter.run is seen.run
    (version,) = versions(exporter.directory)
    for side in ("user", "item"):
        path = tmp_path / "model" / "export" / "latest" / str(version) / side
        assert (path / "saved_model.pb").exists()
