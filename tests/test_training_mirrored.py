"""train_and_evaluate under a two-replica MirroredStrategy (two logical
CPUs, so a fresh process): the loop, the row-sparse optimizers' gathers
and the per-replica logs work together."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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
