"""One seed per model_dir for every random stream of training.

A run's seed is `PYTHON_RANDOM_SEED` when set; else the seed recorded in
model_dir by an earlier run of it (a resume); else a freshly drawn one.
The chief records it in `model_dir/run_seed.json` before training
starts, and a resumed run takes the recorded seed whatever the
environment says now (one warning line when they differ), so its
streams continue. The seed feeds Keras (initial weights, dropout seed
generators), the training reader's shuffle and the training sampler's
streams (RunContext); evaluation reads in order and its sampler draws
from seed 0, so metrics depend on the checkpoint only.

Under MultiWorkerMirroredStrategy every worker takes the chief's seed
through a collective (`shared_run_seed`), so no worker but the chief
reads or writes model_dir for it. Under ParameterServerStrategy the
chief takes it (`run_seed`) and sends it to each worker with the
worker's start position (training/ps_input.py).

Older model_dirs: a `sampler_streams.json` (the samplers' record before
this one) supplies the seed and is folded into `run_seed.json`; a
model_dir that holds checkpoints but no record continues with the seed
those runs used for their shuffle and samplers, `PYTHON_RANDOM_SEED` or
0.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from typing import TYPE_CHECKING

from easymatch.errors import ConfigError, DataError

if TYPE_CHECKING:  # TF is imported when needed: every CLI reads the seed.
    import tensorflow as tf

logger = logging.getLogger("easymatch")

SEED_ENV = "PYTHON_RANDOM_SEED"
SEED_FILE = "run_seed.json"
# Written by runs before run seeds; read so that they resume.
LEGACY_FILE = "sampler_streams.json"
# NumPy's global seed takes 32 bits; drawn seeds stay in int32 too, which
# every consumer (Keras seed tensors, the collective below) holds.
MAX_SEED = 2**32 - 1
DRAWN_BITS = 31


def env_seed() -> int | None:
    """$PYTHON_RANDOM_SEED as an integer, or None when unset."""
    text = os.environ.get(SEED_ENV, "")
    if not text:
        return None
    if not text.isdigit() or int(text) > MAX_SEED:
        raise ConfigError(
            f"{SEED_ENV}: {text!r} is not an integer in [0, {MAX_SEED}]"
        )
    return int(text)


def _read(path: str) -> dict:
    try:
        with open(path) as source:
            recorded = json.load(source)
        return {
            "seed": int(recorded["seed"]),
            "num_workers": int(recorded["num_workers"]),
        }
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: not a run seed record ({error}); remove it to record "
            "a new seed"
        ) from None


def _write(path: str, record: dict) -> None:
    # Written under a scratch name and renamed: a reader never sees half.
    scratch = f"{path}.tmp-{os.getpid()}"
    with open(scratch, "w") as out:
        json.dump(record, out)
    os.replace(scratch, path)


def _recorded(model_dir: str) -> tuple[dict | None, str]:
    """The record of an earlier run of model_dir and where it was."""
    for name in (SEED_FILE, LEGACY_FILE):
        path = os.path.join(model_dir, name)
        if os.path.exists(path):
            return _read(path), name
    return None, ""


def run_seed(model_dir: str, *, num_workers: int = 1, record: bool) -> int:
    """The run seed of model_dir (see the module docstring); with
    `record` (the chief) written there when not recorded yet.

    `num_workers`: the input pipelines whose sampler streams the seed
    splits; recorded, and a resume with another number says so.
    """
    path = os.path.join(model_dir, SEED_FILE)
    env = env_seed()
    recorded, name = _recorded(model_dir)
    if recorded is None:
        # TF's `checkpoint` file names a model_dir's latest checkpoint.
        if os.path.exists(os.path.join(model_dir, "checkpoint")):
            # Checkpoints from before run seeds: their streams' seed.
            source, seed = "before run seeds", env or 0
        elif env is not None:
            source, seed = SEED_ENV, env
        else:
            source, seed = "drawn", secrets.randbits(DRAWN_BITS)
        if record:
            _write(
                path,
                {"seed": seed, "num_workers": num_workers, "source": source},
            )
        return seed
    seed = recorded["seed"]
    if env is not None and env != seed:
        logger.warning(
            "%s: continuing the run seed %d recorded there, not %s=%d",
            os.path.join(model_dir, name),
            seed,
            SEED_ENV,
            env,
        )
    if recorded["num_workers"] != num_workers:
        logger.warning(
            "%s: recorded with %d worker(s), now %d: worker shards and "
            "sampler streams differ from the recorded run's",
            os.path.join(model_dir, name),
            recorded["num_workers"],
            num_workers,
        )
    if record and name == LEGACY_FILE:
        _write(path, {**recorded, "source": LEGACY_FILE})
    return seed


def strategy_workers(strategy: tf.distribute.Strategy) -> int:
    """Workers of the strategy, each with one input pipeline."""
    try:
        local = len(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy has no device list
        return 1
    return max(strategy.num_replicas_in_sync // max(local, 1), 1)


def broadcast_seed(strategy: tf.distribute.Strategy, seed: int) -> int:
    """The chief's `seed` on every worker of a multi-worker strategy.

    Each replica of the chief contributes its seed, the others 0; the
    sum over replicas is the seed times the chief's replicas, which every
    worker of MWMS has as many of as its own.
    """
    if strategy_workers(strategy) == 1:
        return seed
    import tensorflow as tf

    mine = seed if strategy.extended.should_checkpoint else 0
    local = len(strategy.extended.worker_devices)
    total = strategy.reduce(
        tf.distribute.ReduceOp.SUM,
        strategy.run(lambda: tf.constant(mine, tf.int64)),
        axis=None,
    )
    return int(total) // local


def shared_run_seed(strategy: tf.distribute.Strategy, model_dir: str) -> int:
    """The run seed under `strategy`, the chief's on every worker; the
    chief records it. Every worker must call this at the same point."""
    chief = strategy.extended.should_checkpoint
    seed = 0
    if chief:
        seed = run_seed(
            model_dir, num_workers=strategy_workers(strategy), record=True
        )
    return broadcast_seed(strategy, seed)


def seed_keras(seed: int) -> None:
    """Seeds Python, NumPy, TF and Keras: the initial weights and the
    dropout seed generators of a model built after this."""
    import keras

    keras.utils.set_random_seed(seed)
