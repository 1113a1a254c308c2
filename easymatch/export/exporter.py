"""Estimator-style exporters run by train_eval after each evaluation.

`model_dir/export/<latest|best>/` holds numbered versions, each written
atomically, and a per-tower view of them TF Serving can watch:

    <version>/{user,item}/        the export (export_model.write_towers)
    <version>/eval_result.json    the evaluation that triggered it
    user/<version> -> ../<version>/user
    item/<version> -> ../<version>/item
    retrieval/<version> -> ../<version>/retrieval   (with a sampler's items)

TF Serving loads `<base_path>/<number>/saved_model.pb`, so it serves the
views `user/`, `item/` and `retrieval/`, one model each. A version is the
Unix time of the export, bumped past the newest existing one when that is
not larger.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time

from easymatch.errors import EasyMatchError
from easymatch.export.atomic import atomic_directory
from easymatch.export.export_model import write_towers
from easymatch.export.retrieval_model import RETRIEVAL
from easymatch.export.tower_module import SIDES
from easymatch.models.match_model import MatchModel
from easymatch.run_context import RunContext

logger = logging.getLogger("easymatch")

EXPORT_SUBDIR = "export"
EVAL_RESULT = "eval_result.json"
# tf.estimator's exports_to_keep default; ExportConfig has no such field.
KEEP_VERSIONS = 5
# A version's SavedModels, each served from its own view directory.
VIEWS = (*SIDES, RETRIEVAL)


def versions(directory: str) -> list[int]:
    """The complete versions in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def next_version(directory: str) -> int:
    existing = versions(directory)
    newest = existing[-1] if existing else 0
    return max(int(time.time()), newest + 1)


class Exporter:
    """`exporter(model, step, metrics)`: exports per export_config.

    "latest" exports after every evaluation; "best" only when
    `best_exporter_metric` beats every version exported so far (by
    `metric_larger_is_better`). Both keep the newest `keep` versions, for
    "best" the best ones.
    """

    def __init__(self, run: RunContext, keep: int = KEEP_VERSIONS) -> None:
        config = run.config
        export = config.export_config
        self.run = run
        self.kind = export.exporter_type
        self.metric = export.best_exporter_metric
        self.larger_is_better = export.metric_larger_is_better
        self.keep = keep
        self.directory = os.path.join(
            config.model_dir, EXPORT_SUBDIR, self.kind
        )

    def best_so_far(self) -> float | None:
        """The metric of the best version on disk (its eval_result)."""
        values = []
        for version in versions(self.directory):
            path = os.path.join(self.directory, str(version), EVAL_RESULT)
            if os.path.isfile(path):
                with open(path) as handle:
                    values.append(json.load(handle).get(self.metric))
        values = [v for v in values if v is not None and not math.isnan(v)]
        if not values:
            return None
        return max(values) if self.larger_is_better else min(values)

    def improves(self, metrics: dict[str, float]) -> bool:
        if self.metric not in metrics:
            raise EasyMatchError(
                f"export_config.best_exporter_metric: {self.metric!r} is not "
                f"in the evaluation ({', '.join(sorted(metrics))})"
            )
        value = metrics[self.metric]
        best = self.best_so_far()
        if math.isnan(value):
            return False
        if best is None:
            return True
        return value > best if self.larger_is_better else value < best

    def __call__(
        self, model: MatchModel, step: int, metrics: dict[str, float]
    ) -> str | None:
        """Returns the new version's directory, or None if not exported."""
        if self.kind == "best" and not self.improves(metrics):
            logger.info(
                "%s %s at step %d does not beat the best export; skipped",
                self.metric,
                metrics[self.metric],
                step,
            )
            return None
        version = str(next_version(self.directory))
        path = os.path.join(self.directory, version)
        with atomic_directory(path) as tmp:
            write_towers(model, self.run, tmp)
            record = {"global_step": step, **metrics}
            with open(os.path.join(tmp, EVAL_RESULT), "w") as handle:
                json.dump(record, handle, sort_keys=True)
        self.prune()
        self.sync_views()
        logger.info("exported step %d to %s", step, path)
        return path

    def prune(self) -> None:
        """Keeps the newest `keep` versions; their views go first, so a
        watcher never follows a link into a directory being removed."""
        for version in versions(self.directory)[: -self.keep]:
            for side in VIEWS:
                link = os.path.join(self.directory, side, str(version))
                if os.path.islink(link):
                    os.unlink(link)
            shutil.rmtree(os.path.join(self.directory, str(version)))

    def sync_views(self) -> None:
        """Links every version into the views and drops dangling links,
        which also repairs the views after a crash between the steps.
        The retrieval view exists once a version has a retrieval model."""
        for side in VIEWS:
            view = os.path.join(self.directory, side)
            linked = [
                version
                for version in map(str, versions(self.directory))
                if side in SIDES
                or os.path.isdir(os.path.join(self.directory, version, side))
            ]
            if not linked and not os.path.isdir(view):
                continue
            os.makedirs(view, exist_ok=True)
            for name in os.listdir(view):
                link = os.path.join(view, name)
                if os.path.islink(link) and not os.path.exists(link):
                    os.unlink(link)
            for version in linked:
                link = os.path.join(view, version)
                if not os.path.lexists(link):
                    os.symlink(os.path.join("..", version, side), link)


def make_exporter(run: RunContext) -> Exporter | None:
    """The exporter train_eval runs, when the config has export_config;
    it exports with the run's feature set and specs."""
    if not run.config.HasField("export_config"):
        return None
    return Exporter(run)
