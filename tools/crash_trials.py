"""Kills train_eval with SIGKILL mid-run, reruns it, checks the outcome.

python tools/crash_trials.py --trials N [--kills K] [--seed S]

A trial trains one model_dir to the end through K kills: after a chosen
step, while a checkpoint is being saved (its `_temp` files exist) or while
an export is being written (its `.tmp-<pid>` directory exists), the
process gets SIGKILL and train_eval is started again. The config has MLP
dropout, VariationalDropout, a sampler with mixed negatives and logQ on.
Checked per kill: the rerun resumes from the checkpoint that was the
latest when it was killed and trains from the next step (no step before
it is trained twice, none is skipped); per trial: the run finishes and its
final checkpoint equals, bitwise, an uninterrupted run's. Prints a JSON
summary.

No run gets PYTHON_RANDOM_SEED: the uninterrupted run draws its run seed
and each trial's model_dir starts with that run's record of it
(`run_seed.json`), so every rerun after a kill must take the recorded
seed for its shuffle, sampler and dropout streams.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

from gen_taobao_data import generate  # noqa: E402

from easymatch.training.run_seed import SEED_ENV, SEED_FILE  # noqa: E402

NUM_STEPS = 24
SAVE_EVERY = 4
KINDS = ("step", "save", "export")
STEP_LINE = re.compile(r"step (\d+)/\d+:")
RESUMED = re.compile(r"resuming from \S*model\.ckpt-(\d+)")


def edits(data: str, model_dir: str) -> str:
    """The trial config: mixed negatives with logQ, dropout, VD, exports."""
    return json.dumps(
        {
            "train_input_path": os.path.join(data, "train.parquet"),
            "eval_input_path": os.path.join(data, "eval.parquet"),
            "model_dir": model_dir,
            "data_config.batch_size": 16,
            "data_config.negative_sampler.num_sample": 8,
            "data_config.negative_sampler.input_path": os.path.join(
                data, "item_table.txt"
            ),
            "train_config.num_epochs": 0,
            "train_config.num_steps": NUM_STEPS,
            "train_config.save_checkpoints_steps": SAVE_EVERY,
            "train_config.log_step_count_steps": 1,
            "eval_config.num_steps": 1,
            "model_config.dssm.user_tower.mlp.dropout_ratio": [0.5],
            "model_config.dssm.item_tower.mlp.dropout_ratio": [0.5],
            "model_config.variational_dropout.regularization_lambda": 0.01,
            "export_config.exporter_type": "latest",
        }
    )


def launch(data: str, model_dir: str, log: str) -> subprocess.Popen:
    config = os.path.join(ROOT, "samples", "dssm_mixed_negatives.config")
    command = [sys.executable, "-m", "easymatch.train_eval"]
    command += ["--pipeline_config_path", config]
    command += ["--edit_config_json", edits(data, model_dir)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop(SEED_ENV, None)
    with open(log, "w") as handle:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=handle,
            env=env,
        )


def latest_step(model_dir: str) -> int:
    latest = tf.train.latest_checkpoint(model_dir)
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _saving(model_dir: str, step: int) -> bool:
    prefix = os.path.join(model_dir, f"model.ckpt-{step}")
    return os.path.exists(f"{prefix}_temp") or os.path.exists(f"{prefix}.index")


def _exporting(model_dir: str, pid: int) -> bool:
    export = os.path.join(model_dir, "export")
    if not os.path.isdir(export):
        return False
    return any(
        name.endswith(f".tmp-{pid}")
        for sub in os.listdir(export)
        if os.path.isdir(os.path.join(export, sub))
        for name in os.listdir(os.path.join(export, sub))
    )


def kill_at(process, model_dir: str, log: str, kind: str, step: int) -> dict:
    """Polls until the kill point, then SIGKILLs; what was seen then."""
    while process.poll() is None:
        with open(log) as handle:
            steps = [int(s) for s in STEP_LINE.findall(handle.read())]
        reached = max(steps, default=0)
        if kind == "step" and reached >= step:
            break
        if kind == "save" and _saving(model_dir, step):
            break
        if kind == "export" and reached >= step:
            if _exporting(model_dir, process.pid):
                break
        time.sleep(0.002)
    else:
        return {"kind": kind, "step": step, "killed": False}
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    return {
        "kind": kind,
        "step": step,
        "killed": True,
        "last_step_logged": reached,
        "in_save": kind == "save"
        and os.path.exists(os.path.join(model_dir, f"model.ckpt-{step}_temp")),
        "latest_checkpoint": latest_step(model_dir),
    }


def final_weights(model_dir: str) -> dict[str, np.ndarray]:
    reader = tf.train.load_checkpoint(model_dir)
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "save_counter" not in name and "_CHECKPOINTABLE" not in name
    }


def kill_points(rng: random.Random, kills: int) -> list[tuple[str, int]]:
    """Up to `kills` points at increasing steps, each kind at least once:
    saves and exports happen at checkpoint steps (the last step's too)."""
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(kills - 3)]
    rng.shuffle(kinds)
    points: list[tuple[str, int]] = []
    step = 0
    for kind in kinds:
        if kind == "step":
            step += rng.randint(1, SAVE_EVERY - 1)
        else:
            step = (step // SAVE_EVERY + 1) * SAVE_EVERY
        if step > NUM_STEPS:
            break
        points.append((kind, step))
    return points


def _started(log: str) -> tuple[int, int | None]:
    """(checkpoint step a run resumed from, its first trained step)."""
    with open(log) as handle:
        text = handle.read()
    resumed = RESUMED.search(text)
    steps = [int(s) for s in STEP_LINE.findall(text)]
    return (int(resumed.group(1)) if resumed else 0), min(steps, default=None)


def trial(data: str, work: str, points, reference) -> dict:
    """Kills at `points` in turn, then lets the last rerun finish."""
    model_dir = os.path.join(work, "model")
    kills: list[dict] = []
    retrained = wrong_start = 0
    for index in range(len(points) + 1):
        log = os.path.join(work, f"run{index}.log")
        process = launch(data, model_dir, log)
        if index < len(points):
            kills.append(kill_at(process, model_dir, log, *points[index]))
        else:
            process.wait()
        if index == 0:
            continue
        resumed, first = _started(log)
        expected = kills[index - 1].get("latest_checkpoint", 0)
        # A rerun must start right after the latest checkpoint it found.
        retrained += max(0, expected - resumed)
        wrong_start += int(
            resumed != expected or (first is not None and first != resumed + 1)
        )
    result = {
        "kills": kills,
        "finished": process.returncode == 0,
        "retrained_before_checkpoint": retrained,
        "wrong_starts": wrong_start,
    }
    if process.returncode == 0:
        weights = final_weights(model_dir)
        diff = max(
            float(np.max(np.abs(weights[n] - reference[n]), initial=0.0))
            if weights[n].dtype.kind == "f"
            else float(not np.array_equal(weights[n], reference[n]))
            for n in reference
        )
        result["bitwise_equal"] = diff == 0.0 and weights.keys() == (
            reference.keys()
        )
        result["max_abs_weight_diff"] = diff
    return result


def run_trials(trials: int, kills: int, seed: int, work: str) -> dict:
    data = os.path.join(work, "data")
    generate(data, num_users=60, num_items=40, num_rows=400, seed=seed)
    straight = os.path.join(work, "straight")
    os.makedirs(straight)
    process = launch(data, os.path.join(straight, "model"), "/dev/null")
    if process.wait() != 0:
        raise RuntimeError("the uninterrupted run failed")
    reference = final_weights(os.path.join(straight, "model"))
    with open(os.path.join(straight, "model", SEED_FILE)) as source:
        seed_source = json.load(source)["source"]
    rng = random.Random(seed)
    results = []
    for index in range(trials):
        trial_dir = os.path.join(work, f"trial{index}")
        # The uninterrupted run's seed, as a resume would find it.
        os.makedirs(os.path.join(trial_dir, "model"))
        shutil.copy(
            os.path.join(straight, "model", SEED_FILE),
            os.path.join(trial_dir, "model"),
        )
        results.append(
            trial(data, trial_dir, kill_points(rng, kills), reference)
        )
    all_kills = [k for r in results for k in r["kills"] if k["killed"]]
    return {
        "trials": trials,
        "run_seed_source": seed_source,
        "kills": len(all_kills),
        "kills_by_kind": {
            kind: sum(k["kind"] == kind for k in all_kills) for kind in KINDS
        },
        "distinct_kill_points": len(
            {(k["kind"], k["step"]) for k in all_kills}
        ),
        "kills_inside_a_save": sum(k.get("in_save", False) for k in all_kills),
        "finished": sum(r["finished"] for r in results),
        "steps_retrained_before_a_checkpoint": sum(
            r["retrained_before_checkpoint"] for r in results
        ),
        "wrong_starts": sum(r["wrong_starts"] for r in results),
        "bitwise_equal": sum(r.get("bitwise_equal", False) for r in results),
        "max_abs_weight_diff": max(
            (r.get("max_abs_weight_diff", float("inf")) for r in results),
            default=0.0,
        ),
        "details": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="easymatch-crash-")
    try:
        summary = run_trials(args.trials, args.kills, args.seed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
