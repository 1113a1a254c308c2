"""Parameter-server training end to end: chief, 2 workers and 2 ps as
subprocesses on loopback (hand-written TF_CONFIG or easymatch.launch);
sharded tables, checkpoint → one process, export, resume with another
number of ps tasks, a worker killed mid-run."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits, run_cli
from serving import signature_rows

from easymatch.checkpoint import checkpoint_path, make_checkpoint, sublayers
from easymatch.config import load_pipeline_config
from easymatch.export.export_model import load_model
from easymatch.launch import free_port
from easymatch.layers import EmbeddingTables
from easymatch.models.builder import build_model
from easymatch.run_context import RunContext

pytestmark = pytest.mark.slow

# user_id_emb (2000 × 16 floats, 128 kB) and the larger tables shard; the
# demo's small ones (cms_segid_emb, 6 kB) stay whole.
SHARD_MIN_BYTES = 100_000

# The chief of train_eval, plus a hook that dumps every sharded table's
# shards (shape, device) and values at the end of training.
CHIEF = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    from easymatch.config import load_pipeline_config
    from easymatch.training.cluster import PARAMETER_SERVER, read_tf_config
    from easymatch.training.hooks import Hook
    from easymatch.training.ps_loop import (
        sharded_tables_of, train_and_evaluate_ps,
    )
    from easymatch.training.strategies import make_strategy

    class DumpShards(Hook):
        def on_train_end(self, state, step):
            tables = sharded_tables_of(state.model)
            shards = {
                name: [[v.shape.as_list(), v.device] for v in t.variables]
                for name, t in tables.items()
            }
            values = {
                name: tf.concat([v.read_value() for v in t.variables], 0)
                for name, t in tables.items()
            }
            np.savez(sys.argv[3] + ".npz", **values)
            with open(sys.argv[3] + ".json", "w") as handle:
                json.dump(shards, handle)

    cluster = read_tf_config()
    config = load_pipeline_config(sys.argv[1], sys.argv[2])
    train_and_evaluate_ps(
        config,
        strategy=make_strategy(cluster, PARAMETER_SERVER),
        cluster=cluster,
        extra_hooks=[DumpShards()],
    )
    """
)


def _edits(data, model_dir, **extra) -> str:
    return demo_edits(
        data,
        model_dir,
        **{"train_config.shard_min_bytes": SHARD_MIN_BYTES, **extra},
    )


def _cluster(num_workers: int = 2, num_ps: int = 2) -> dict:
    return {
        job: [f"127.0.0.1:{free_port()}" for _ in range(count)]
        for job, count in (
            ("chief", 1),
            ("worker", num_workers),
            ("ps", num_ps),
        )
    }


def _train_eval(edits: str) -> list[str]:
    """train_eval's arguments on the demo config with `edits`."""
    return ["-m", "easymatch.train_eval", "--pipeline_config_path"] + [
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
    ]


def _kill_after(marker: str, task: tuple, killed: list):
    """on_progress of _run_cluster: SIGKILLs `task` (by PID) once the
    chief's log shows `marker`; its status goes into `killed`."""

    def kill(log: str, processes: dict) -> None:
        if not killed and marker in log:
            processes[task].send_signal(signal.SIGKILL)
            killed.append(processes[task].wait())

    return kill


def _start(
    command: list[str], jobs: dict, task: tuple, log
) -> subprocess.Popen:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env["TF_CONFIG"] = json.dumps(
        {"cluster": jobs, "task": {"type": task[0], "index": task[1]}}
    )
    return subprocess.Popen(
        [sys.executable, *command],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )


def _run_cluster(jobs, chief_command, edits, log_dir, on_progress=None):
    """Starts every task (servers run train_eval), waits for the chief;
    returns (chief's status, its log). Every process ends by PID."""
    log_dir.mkdir(parents=True, exist_ok=True)
    train_eval = _train_eval(edits)
    processes = {}
    try:
        for job in ("ps", "worker"):
            for index in range(len(jobs[job])):
                with open(log_dir / f"{job}_{index}.log", "w") as log:
                    processes[job, index] = _start(
                        train_eval, jobs, (job, index), log
                    )
        chief_log = log_dir / "chief_0.log"
        with open(chief_log, "w") as log:
            processes["chief", 0] = chief = _start(
                chief_command, jobs, ("chief", 0), log
            )
        deadline = time.monotonic() + 900
        while chief.poll() is None and time.monotonic() < deadline:
            if on_progress is not None:
                on_progress(chief_log.read_text(), processes)
            time.sleep(1)
        status = chief.poll()
        # The servers leave once the chief is gone.
        for (job, _), process in processes.items():
            if job != "chief" and process.poll() is None:
                process.wait(timeout=60)
        return status, chief_log.read_text()
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def _steps(model_dir) -> list[int]:
    results = (model_dir / "train_eval_result_v2.txt").read_text()
    return [json.loads(line)["global_step"] for line in results.splitlines()]


def _one_process_tables(config, step: int) -> dict[str, np.ndarray]:
    """The tables of the checkpoint at `step`, restored unsharded."""
    model = load_model(
        RunContext(config), checkpoint_path(config.model_dir, step)
    )
    tables = {}
    layers = [model]
    while layers:
        layer = layers.pop()
        if isinstance(layer, EmbeddingTables):
            assert not layer.sharded_tables
            tables.update(
                {
                    name: variable.numpy()
                    for name, variable in layer._variables_by_table.items()
                }
            )
        layers.extend(sublayers(layer))
    return tables


def test_hand_written_tf_config_shards_and_restores(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = _edits(taobao_data, model_dir)
    dump = tmp_path / "shards"
    status, log = _run_cluster(
        _cluster(),
        ["-c", CHIEF, str(DEMO_CONFIG), edits, str(dump)],
        edits,
        tmp_path / "logs",
    )
    assert status == 0, log[-3000:]
    assert _steps(model_dir) == [5, 10, 12]
    shards = json.loads(dump.with_suffix(".json").read_text())
    assert "user_id_emb" in shards and "cms_segid_emb" not in shards
    # Two half tables, one on each ps: no process holds a whole table.
    assert [shape for shape, _ in shards["user_id_emb"]] == [
        [1000, 16],
        [1000, 16],
    ]
    for table in shards.values():
        devices = [device for _, device in table]
        assert [d.split("/")[1] for d in devices] == ["job:ps", "job:ps"]
        assert {d.split("/")[3] for d in devices} == {"task:0", "task:1"}
    # The last checkpoint restores into one process: the same embeddings.
    config = load_pipeline_config(str(DEMO_CONFIG), edits)
    restored = _one_process_tables(config, 12)
    with np.load(dump.with_suffix(".npz")) as trained:
        assert set(trained.files) <= set(restored)
        for name in trained.files:
            np.testing.assert_array_equal(restored[name], trained[name])


# Both towers' embeddings of the same rows, with only tensorflow imported.
TF_ONLY = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    results = {}
    for root, rows, out in zip(*[iter(sys.argv[1:])] * 3):
        for side in ("user", "item"):
            serving = tf.saved_model.load(f"{root}/{side}").signatures[
                "serving_default"
            ]
            specs = serving.structured_input_signature[1]
            data = np.load(f"{rows}_{side}.npz", allow_pickle=True)
            inputs = {k: tf.constant(data[k], specs[k].dtype) for k in specs}
            results[f"{out}_{side}"] = serving(**inputs)[
                f"{side}_tower_emb"
            ].numpy()
    assert not [m for m in sys.modules if m.startswith("easymatch")]
    np.savez(sys.argv[-1], **results)
    """
)


def test_launch_exports_and_resumes_on_other_ps_count(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = _edits(
        taobao_data, model_dir, **{"export_config.exporter_type": "latest"}
    )
    result = run_cli(
        "easymatch.launch",
        "--num_workers",
        "2",
        "--num_ps",
        "2",
        "--",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    logs = sorted(p.name for p in (model_dir / "logs").iterdir())
    assert logs == [
        "chief_0.log",
        "ps_0.log",
        "ps_1.log",
        "worker_0.log",
        "worker_1.log",
    ]
    assert "sharded over 2 ps" in (model_dir / "logs/chief_0.log").read_text()
    assert _steps(model_dir) == [5, 10, 12]
    # Each ps writes its variables' part of a checkpoint, the chief its own.
    assert len(list(model_dir.glob("model.ckpt-12.data-*-of-00003"))) == 3
    for task in ("ps_0", "ps_1", "worker_0", "worker_1"):
        log = (model_dir / f"logs/{task}.log").read_text()
        assert "done serving; peak RSS" in log, task
    # The chief's export of step 12 and an export of the sharded
    # checkpoint by a one-process `easymatch.export` load in a TF-only
    # process and embed the same rows alike.
    chief_export = max(
        p for p in (model_dir / "export/latest").iterdir() if p.name.isdigit()
    )
    offline = tmp_path / "offline"
    result = run_cli(
        "easymatch.export",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        edits,
        "--checkpoint_path",
        str(checkpoint_path(str(model_dir), 12)),
        "--export_dir",
        str(offline),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = pq.read_table(taobao_data / "eval.parquet")
    for side in ("user", "item"):
        np.savez(
            tmp_path / f"rows_{side}.npz",
            **signature_rows(chief_export, side, table),
        )
    out = tmp_path / "embeddings.npz"
    rows = str(tmp_path / "rows")
    subprocess.run(
        [sys.executable, "-c", TF_ONLY]
        + [str(chief_export), rows, "chief", str(offline), rows, "offline"]
        + [str(out)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    with np.load(out) as embeddings:
        for side in ("user", "item"):
            chief = embeddings[f"chief_{side}"]
            assert chief.shape[0] == 8 and np.isfinite(chief).all()
            np.testing.assert_array_equal(chief, embeddings[f"offline_{side}"])
    # A restart with 3 ps continues from step 12, the tables resharded;
    # an evaluator task (sidecar) evaluates instead of the chief.
    result = run_cli(
        "easymatch.launch",
        "--num_workers",
        "1",
        "--num_ps",
        "3",
        "--evaluator",
        "--",
        "--pipeline_config_path",
        str(DEMO_CONFIG),
        "--edit_config_json",
        _edits(taobao_data, model_dir, **{"train_config.num_steps": 15}),
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    chief_log = (model_dir / "logs/chief_0.log").read_text()
    assert "sharded over 3 ps" in chief_log
    assert f"resuming from {model_dir}/model.ckpt-12" in chief_log
    assert "eval at step" not in chief_log
    assert _steps(model_dir)[:3] == [5, 10, 12]
    assert _steps(model_dir)[-1] == 15


def test_killed_worker_does_not_stop_training(taobao_data, tmp_path):
    model_dir = tmp_path / "model"
    edits = _edits(
        taobao_data,
        model_dir,
        **{
            "train_config.num_steps": 40,
            "train_config.save_checkpoints_steps": 20,
            "train_config.log_step_count_steps": 10,
        },
    )
    killed = []
    # After the first logged steps, worker 1 dies.
    kill_worker_1 = _kill_after("step 10/40", ("worker", 1), killed)

    status, log = _run_cluster(
        _cluster(),
        _train_eval(edits),
        edits,
        tmp_path / "logs",
        on_progress=kill_worker_1,
    )
    assert killed == [-signal.SIGKILL]
    assert status == 0, log[-3000:]
    assert _steps(model_dir) == [20, 40]


def _model_variables(path) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(str(path))
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if name.startswith("model/")
    }


def test_ps_steps_equal_one_process_steps(taobao_data, tmp_path, monkeypatch):
    """From the same weights, two steps on one worker (sharded tables,
    Adagrad slots on the ps, Adam for the towers, logQ's frequency
    estimator) give the weights and estimator state of two one-process
    steps: the same batches, the same updates."""
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
        str(DEMO_CONFIG), _edits(taobao_data, tmp_path / "init", **options)
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
        _edits(taobao_data, one, **options),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ps = tmp_path / "ps"
    edits = _edits(taobao_data, ps, **options)
    status, log = _run_cluster(
        _cluster(num_workers=1),
        _train_eval(edits),
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
    import json, os, sys
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
    os._exit(0)
    """
)


def test_per_worker_generator_runs_on_the_chief(taobao_data, tmp_path):
    """Why ps_loop ships batches: TF 2.20 runs a per-worker dataset's
    Python generator in the chief's process, not on the worker."""
    edits = _edits(taobao_data, tmp_path / "model")
    status, log = _run_cluster(
        _cluster(num_workers=1, num_ps=1),
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


def test_killed_ps_ends_in_one_line_and_a_restart_resumes(
    taobao_data, tmp_path
):
    model_dir = tmp_path / "model"
    edits = _edits(
        taobao_data,
        model_dir,
        **{
            "train_config.num_steps": 30,
            "train_config.save_checkpoints_steps": 10,
            "train_config.log_step_count_steps": 10,
        },
    )
    command = _train_eval(edits)
    jobs = _cluster()
    killed = []
    kill_ps_1 = _kill_after("eval at step 10", ("ps", 1), killed)

    status, log = _run_cluster(
        jobs, command, edits, tmp_path / "logs", on_progress=kill_ps_1
    )
    assert killed == [-signal.SIGKILL]
    assert status == 2, log[-3000:]
    latest = tf.train.latest_checkpoint(str(model_dir))
    step = int(latest.rsplit("-", 1)[1])
    assert step in (10, 20)
    assert (
        f"easymatch: error: TF_CONFIG: ps 1 ({jobs['ps'][1]}) is gone; "
        f"restart every task to resume from the checkpoint of step {step}"
    ) in log
    # The restarted cluster (new ports) continues from that checkpoint.
    status, log = _run_cluster(_cluster(), command, edits, tmp_path / "again")
    assert status == 0, log[-3000:]
    assert f"resuming from {latest}" in log
    assert _steps(model_dir)[-1] == 30


def test_non_finite_step_stops_before_its_checkpoint(taobao_data, tmp_path):
    # Finite weights whose sum overflows float32 make the weighted loss
    # NaN from the fifth batch (of 32 rows) on.
    table = pq.read_table(taobao_data / "train.parquet")
    weights = np.ones(table.num_rows)
    weights[4 * 32 :] = 3e38
    train_path = tmp_path / "train.parquet"
    column = table.schema.get_field_index("sample_weight")
    pq.write_table(
        table.set_column(column, "sample_weight", pa.array(weights)),
        train_path,
    )
    model_dir = tmp_path / "model"
    edits = _edits(
        taobao_data,
        model_dir,
        **{
            "train_input_path": str(train_path),
            "data_config.shuffle": False,
            "data_config.sample_weight_fields": ["sample_weight"],
            "train_config.save_checkpoints_steps": 4,
            "train_config.log_step_count_steps": 4,
        },
    )
    status, log = _run_cluster(
        _cluster(num_workers=1),
        _train_eval(edits),
        edits,
        tmp_path / "logs",
    )
    assert status == 2, log[-3000:]
    assert re.search(
        r"easymatch: error: step 5: non-finite training: loss terms "
        r"softmax_cross_entropy=\S+, regularization=\S+; first non-finite: "
        r".+; the latest checkpoint stays the one of step 4\n",
        log,
    ), log[-3000:]
    assert tf.train.latest_checkpoint(str(model_dir)).endswith("ckpt-4")
