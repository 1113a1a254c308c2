"""Parameter-server steps against one process, and where a per-worker
dataset's Python generator runs (why PS workers run the input pipeline
in their own process, training/ps_worker.py)."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, run_cli
from ps_cluster import cluster_jobs, ps_edits, run_cluster, train_eval_args

from easymatch.checkpoint import checkpoint_path, make_checkpoint
from easymatch.config import load_pipeline_config
from easymatch.models.builder import build_model
from easymatch.run_context import RunContext

pytestmark = pytest.mark.slow


def _model_variables(path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(path))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("model/")
    }


def test_ps_steps_equal_one_process_steps(taobao_data, tmp_path, monkeypatch):
    """From the same weights, two steps on one worker (its own input
    pipeline, sharded tables, Adagrad slots on the ps, Adam for the
    towers, logQ's frequency estimator) give the weights and estimator
    state of two one-process steps: the same batches, the same updates."""
    monkeypatch.setenv("PYTHON_RANDOM_SEED", "7")
    options = {
        "train_config.num_steps": 2,
        "train_config.save_checkpoints_steps": 2,
        "train_config.log_step_count_steps": 1,
        "eval_config.num_steps": 1,
        # In-batch logQ from the streaming frequency estimator, whose
        # state (on a ps under PS) the checkpoints hold too.
        "model_config.dssm.logq_correction": True,
        "model_config.dssm.item_id_field": "adgroup_id",
        "model_config.dssm.candidate_probability": {"streaming": {}},
    }
    config = load_pipeline_config(
        str(DEMO_CONFIG), ps_edits(taobao_data, tmp_path / "init", **options)
    )
    initial = str(tmp_path / "init" / "model.ckpt-0")
    make_checkpoint(
        build_model(RunContext(config).specs.model), with_optimizers=False
    ).write(initial)
    options["train_config.fine_tune_checkpoint"] = initial
    one = tmp_path / "one"
    result = run_cli(
        "easymatch.train_eval",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        ps_edits(taobao_data, one, **options),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ps = tmp_path / "ps"
    edits = ps_edits(taobao_data, ps, **options)
    status, log = run_cluster(
        cluster_jobs(num_workers=1),
        train_eval_args(edits),
        edits,
        tmp_path / "logs",
    )
    assert status == 0, log[-3000:]
    assert "table user_id_emb [2000, 16] sharded over 2 ps" in log
    expected = _model_variables(checkpoint_path(str(one), 2))
    trained = _model_variables(checkpoint_path(str(ps), 2))
    assert set(trained) == set(expected)
    initial_values = _model_variables(initial)
    for name, value in expected.items():
        # Only float reassociation between the two placements differs.
        np.testing.assert_allclose(trained[name], value, rtol=1e-5, atol=1e-7)
    moved = [
        n
        for n in expected
        if not np.array_equal(expected[n], initial_values[n])
    ]
    assert any("user_id_emb" in name for name in moved)
    assert any("FrequencyEstimator" in name for name in moved)


# A per-worker dataset over a Python generator: where does it run?
PER_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    import tensorflow as tf
    strategy = tf.distribute.experimental.ParameterServerStrategy(
        tf.distribute.cluster_resolver.TFConfigClusterResolver()
    )
    coordinator = (
        tf.distribute.experimental.coordinator.ClusterCoordinator(strategy)
    )
    with strategy.scope():
        total = tf.Variable(0, dtype=tf.int64)

    def rows():
        for value in range(1, 4):
            print("generator pid", os.getpid(), flush=True)
            yield value

    def dataset_fn():
        return tf.data.Dataset.from_generator(
            rows, output_signature=tf.TensorSpec([], tf.int64)
        )

    iterator = iter(coordinator.create_per_worker_dataset(dataset_fn))

    @tf.function
    def step(iterator):
        return strategy.run(total.assign_add, args=(next(iterator),))

    for _ in range(3):
        coordinator.schedule(step, args=(iterator,))
    coordinator.join()
    print(json.dumps({"total": int(total.numpy()), "chief": os.getpid()}))
    sys.stdout.flush()
    # The servers leave once they have seen the chief answer and then stop
    # (strategies.serve polls every 0.25 s): a chief gone before their first
    # poll would keep them waiting for the peer timeout.
    time.sleep(5)
    os._exit(0)
    """
)


def test_per_worker_generator_runs_on_the_chief(taobao_data, tmp_path):
    """Why a PS worker runs the input pipeline beside its server: TF 2.20
    runs a per-worker dataset's Python generator in the chief's process,
    not on the worker."""
    edits = ps_edits(taobao_data, tmp_path / "model")
    status, log = run_cluster(
        cluster_jobs(num_workers=1, num_ps=1),
        ["-c", PER_WORKER],
        edits,
        tmp_path / "logs",
    )
    assert status == 0, log[-3000:]
    # TF's own log lines share the chief's log and may follow the result.
    [line] = [x for x in log.splitlines() if x.startswith('{"total"')]
    result = json.loads(line)
    assert result["total"] == 1 + 2 + 3
    pids = {
        line.split()[-1] for line in log.splitlines() if "generator pid" in line
    }
    assert pids == {str(result["chief"])}
