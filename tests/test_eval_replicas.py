"""Evaluation under two replicas reports what one process reports for the
same checkpoint: uneven and empty replica batches (the last steps of an
eval input) weigh their rows exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import DEMO_CONFIG, ROOT, demo_edits

from easymatch.config import load_pipeline_config
from easymatch.training.loop import train_and_evaluate

# Evaluates model_dir's latest checkpoint over the whole eval input, with
# one process ("single") or a two-replica MirroredStrategy.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    if sys.argv[3] == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    from easymatch import checkpoint
    from easymatch.config import load_pipeline_config
    from easymatch.run_context import RunContext
    from easymatch.training.evaluate import Evaluator

    config = load_pipeline_config(sys.argv[1], sys.argv[2])
    strategy = None
    if sys.argv[3] == "mirrored":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    run = RunContext(config, strategy=strategy)
    model = run.create_model()
    latest = checkpoint.resolve_checkpoint(config.model_dir)
    checkpoint.restore(model, latest, with_optimizers=False)
    print(json.dumps(Evaluator(model, run)(config.eval_input_path)))
    """
)


def _evaluate(edits: str, mode: str) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(DEMO_CONFIG), edits, mode],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(taobao_data, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("eval_replicas")
    config = load_pipeline_config(
        DEMO_CONFIG,
        demo_edits(taobao_data, model_dir, **{"eval_input_path": ""}),
    )
    train_and_evaluate(config)
    return model_dir


@pytest.mark.slow
# 200 eval rows: batches of 64 end in one of 8 (the second replica's last
# batch is short); batches of 48 are five, so the last step's second
# replica has none.
@pytest.mark.parametrize("eval_batch_size", [64, 48])
def test_two_replicas_evaluate_as_one_process(
    taobao_data, trained, eval_batch_size
):
    edits = demo_edits(
        taobao_data,
        trained,
        **{
            "data_config.eval_batch_size": eval_batch_size,
            "eval_config.num_steps": 0,
        },
    )
    single = _evaluate(edits, "single")
    mirrored = _evaluate(edits, "mirrored")
    assert set(single) == set(mirrored)
    for name, value in single.items():
        assert mirrored[name] == pytest.approx(value, rel=1e-5), name
