"""train_and_evaluate under a two-replica MirroredStrategy (two logical
CPUs, so a fresh process): the loop, the row-sparse optimizers' gathers
and the per-replica logs work together; several steps per call train the
same weights as one."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import DEMO_CONFIG, ROOT, demo_edits

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from easymatch.config import load_pipeline_config
    from easymatch.training.loop import train_and_evaluate

    config = load_pipeline_config(sys.argv[1], sys.argv[2])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    print(json.dumps(train_and_evaluate(config, strategy=strategy)))
    """
)


@pytest.mark.slow
def test_two_replicas_train_and_evaluate(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(DEMO_CONFIG),
            demo_edits(taobao_data, model_dir),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert 0.0 < metrics["softmax_cross_entropy"] < 10.0
    # Checkpoints at the configured steps (every 5, and the last, 12).
    steps = sorted(
        int(p.name.split("-")[1].split(".")[0])
        for p in model_dir.glob("model.ckpt-*.index")
    )
    assert steps == [5, 10, 12]


# Trains the same run twice in one process, with steps_per_execution 1 and
# 8, and saves both runs' final weights.
SPE_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    from easymatch.config import load_pipeline_config
    from easymatch.training.hooks import Hook
    from easymatch.training.loop import train_and_evaluate

    class SaveWeights(Hook):
        def __init__(self, path):
            self.path = path

        def on_train_end(self, state, step):
            np.savez(self.path, *[w.numpy() for w in state.model.weights])

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for per_call in (1, 8):
        edits = json.loads(sys.argv[2])
        edits["model_dir"] += f"_{per_call}"
        edits["train_config.steps_per_execution"] = per_call
        config = load_pipeline_config(sys.argv[1], json.dumps(edits))
        os.environ["PYTHON_RANDOM_SEED"] = "3"
        train_and_evaluate(
            config,
            strategy=strategy,
            extra_hooks=[SaveWeights(f"{sys.argv[3]}_{per_call}.npz")],
        )
    """
)


@pytest.mark.slow
def test_steps_per_execution_8_trains_the_weights_of_1(taobao_data, tmp_path):
    # 300 rows per step: an epoch of 2000 rows ends in a batch of 200, so
    # the 16 steps include two short ones, inside a call of 8; streaming
    # logQ gathers the replicas' item ids every step too.
    edits = demo_edits(
        taobao_data,
        tmp_path / "model",
        **{
            "data_config.batch_size": 300,
            "train_config.num_steps": 16,
            "train_config.save_checkpoints_steps": 16,
            "train_config.log_step_count_steps": 16,
            "data_config.eval_batch_size": 64,
            "model_config.dssm.logq_correction": True,
            "model_config.dssm.item_id_field": "adgroup_id",
            "model_config.dssm.candidate_probability": {"streaming": {}},
        },
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            SPE_SCRIPT,
            str(DEMO_CONFIG),
            edits,
            str(tmp_path / "weights"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps_per_execution is 1" not in result.stderr
    with (
        np.load(tmp_path / "weights_1.npz") as one,
        np.load(tmp_path / "weights_8.npz") as eight,
    ):
        assert len(one.files) > 10
        for name in one.files:
            np.testing.assert_allclose(
                one[name], eight[name], rtol=1e-5, atol=1e-6, err_msg=name
            )
