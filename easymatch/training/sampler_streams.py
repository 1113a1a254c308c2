"""The seed of a run's sampler streams, recorded in model_dir.

Worker k's training negatives are a function of (seed, k, step, the
batch's ids) (data/samplers/negative_sampler.py), so a resumed run draws
what it would have drawn if the seed is the same. The chief records the
seed and the number of workers in model_dir when training starts; a
resumed run takes the recorded seed, whatever the environment says now,
and says so when they differ.
"""

from __future__ import annotations

import json
import logging
import os

from easymatch.data.samplers.negative_sampler import default_seed
from easymatch.errors import DataError

logger = logging.getLogger("easymatch")

STREAMS_FILE = "sampler_streams.json"


def stream_seed(model_dir: str, num_workers: int, *, record: bool) -> int:
    """The seed of the training samplers' streams; with `record`, written
    to model_dir when not recorded yet."""
    path = os.path.join(model_dir, STREAMS_FILE)
    seed = default_seed()
    if not os.path.exists(path):
        if record:
            with open(path, "w") as out:
                json.dump({"seed": seed, "num_workers": num_workers}, out)
        return seed
    try:
        with open(path) as source:
            recorded = json.load(source)
        recorded_seed = int(recorded["seed"])
        recorded_workers = int(recorded["num_workers"])
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"{path}: not a sampler stream record ({error}); remove it to "
            "record the current seed"
        ) from None
    if recorded_seed != seed:
        logger.warning(
            "%s: continuing the sampler streams of seed %d, not %d",
            path,
            recorded_seed,
            seed,
        )
    if recorded_workers != num_workers:
        logger.warning(
            "%s: recorded with %d worker(s), now %d: worker shards and "
            "sampler streams differ from the recorded run's",
            path,
            recorded_workers,
            num_workers,
        )
    return recorded_seed
