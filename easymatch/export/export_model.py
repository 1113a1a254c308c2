"""Export: a checkpoint → `<export_dir>/{user,item}` tower SavedModels.

Layout of an export directory (docs/export.md):

    user/, item/             SavedModels with `serving_default` (raw
                             columns) and `tf_example` (serialized protos)
      pipeline.config        the config, for predict
      assets.extra/tf_serving_warmup_requests
    item_index/              with an item corpus (write_item_index)
    retrieval/               with an item corpus: user inputs → top-K
                             items (retrieval_model.py)
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np

from easymatch import checkpoint as checkpoints
from easymatch.config import save_pipeline_config
from easymatch.errors import DataError, EasyMatchError
from easymatch.export.atomic import atomic_directory
from easymatch.export.index_tuning import (
    PERTURBED,
    QUERY_SAMPLE,
    check_target_recall,
    tune_index,
)
from easymatch.export.input_schema import sample_batch, training_types
from easymatch.export.inputs import (
    arrow_types,
    make_table_reader,
    reader_kinds,
    signature_batches,
    typed_column,
)
from easymatch.export.predictor import TowerRunner
from easymatch.export.retrieval_model import (
    RETRIEVAL,
    RetrievalExport,
    check_item_embeddings,
    check_top_k,
)
from easymatch.export.sampler_corpus import (
    sampler_item_table,
    write_sampler_corpus,
)
from easymatch.export.signatures import column_dtypes
from easymatch.export.tower_module import SIDES, TowerExport
from easymatch.export.warmup import write_warmup
from easymatch.features import FeatureSet
from easymatch.models.builder import build_model
from easymatch.models.match_model import MatchModel
from easymatch.run_context import RunContext
from easymatch.specs import DataSpec

logger = logging.getLogger("easymatch")

PIPELINE_CONFIG = "pipeline.config"
ITEM_INDEX = "item_index"
INDEX_BATCH_SIZE = 1024


def select_checkpoint(config, checkpoint_path: str | None) -> str:
    """The flag's checkpoint; else (SPEC §3.10) for exporter_type "best"
    the evaluated checkpoint still on disk with the best
    best_exporter_metric; else, or without one, the latest in model_dir."""
    if checkpoint_path:
        return checkpoints.resolve_checkpoint(checkpoint_path)
    export = config.export_config
    if export.exporter_type == "best":
        metric = export.best_exporter_metric
        sign = 1.0 if export.metric_larger_is_better else -1.0
        scored = {}
        for result in checkpoints.read_eval_results(config.model_dir):
            prefix = os.path.join(
                config.model_dir,
                f"{checkpoints.CHECKPOINT_NAME}-{result['global_step']}",
            )
            value = result.get(metric)
            if value is None or math.isnan(value):
                continue
            if os.path.exists(f"{prefix}.index"):
                # A later evaluation of the same step replaces an earlier.
                scored[prefix] = (sign * value, result["global_step"])
        if scored:
            # The latest step wins a tie.
            return max(scored, key=scored.__getitem__)
        logger.warning(
            "no evaluated checkpoint with %s in %s; exporting the latest",
            metric,
            config.model_dir,
        )
    return checkpoints.resolve_checkpoint(config.model_dir)


def tower_features(
    model: MatchModel, feature_set: FeatureSet, side: str
) -> FeatureSet:
    """The features the `side` tower reads, as the model says."""
    return feature_set.subset(model.tower_feature_names(side))


def load_model(run: RunContext, checkpoint: str) -> MatchModel:
    """A fresh model holding the checkpoint's weights (no optimizers)."""
    model = build_model(run.specs.model)
    checkpoints.restore(model, checkpoint, with_optimizers=False)
    return model


def write_towers(
    model: MatchModel,
    run: RunContext,
    directory: str,
    *,
    item_input_path: str | None = None,
    asset_files: Sequence[str] = (),
    top_k: int | None = None,
    target_recall: float | None = None,
) -> dict[str, str]:
    """Writes both towers (and with an item corpus the item index and
    the retrieval model) into `directory`.

    Returns name → path. Input dtypes come from the training data's
    schema, the warmup rows from its first rows (both as recorded in
    model_dir, see input_schema.py), or for the item tower from
    `item_input_path` when given. `top_k` and `target_recall` override
    export_config's retrieval_top_k and index_target_recall.
    """
    config = run.config
    types = training_types(run)
    paths = {}
    for side in SIDES:
        features = tower_features(model, run.feature_set, side)
        dtypes = column_dtypes(features.input_columns(), types)
        path = os.path.join(directory, side)
        TowerExport(model, features, side, dtypes).save(path)
        save_pipeline_config(config, os.path.join(path, PIPELINE_CONFIG))
        for asset in asset_files:
            shutil.copy(asset, path)
        rows_path = item_input_path if side == "item" else None
        rows = sample_batch(run, dtypes, rows_path)
        write_warmup(path, rows)
        paths[side] = path
        if side == "user":
            user = (features, dtypes, rows)
        else:
            id_field = item_id_field(run.specs.data, features)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = item_input_path or write_sampler_corpus(run, scratch)
        if corpus is None:
            return paths
        ids, embeddings = item_embeddings(
            paths["item"], corpus, run.specs.data, id_field
        )
    try:
        check_item_embeddings(ids, embeddings)
    except DataError as error:
        source = item_input_path or sampler_item_table(config)
        raise DataError(f"{source}: {error}") from None
    if target_recall is None:
        target_recall = config.export_config.index_target_recall
    paths[ITEM_INDEX] = write_item_index(
        directory,
        ids,
        embeddings,
        run.specs.retrieval.similarity,
        target_recall,
        *user_queries(run, paths["user"]),
    )
    if top_k is None:
        top_k = config.export_config.retrieval_top_k
    retrieval = RetrievalExport(model, *user[:2], ids, embeddings, top_k)
    paths[RETRIEVAL] = os.path.join(directory, RETRIEVAL)
    retrieval.save(paths[RETRIEVAL])
    save_pipeline_config(
        config, os.path.join(paths[RETRIEVAL], PIPELINE_CONFIG)
    )
    write_warmup(paths[RETRIEVAL], user[2])
    return paths


def export(
    run: RunContext,
    checkpoint_path: str | None,
    export_dir: str,
    item_input_path: str | None = None,
    asset_files: Sequence[str] = (),
    top_k: int | None = None,
    target_recall: float | None = None,
) -> dict[str, str]:
    """Exports the selected checkpoint; returns name → final path.

    `export_dir` must not exist; it appears only once complete.
    """
    config = run.config
    if os.path.exists(export_dir):
        raise EasyMatchError(f"{export_dir}: already exists")
    if top_k is not None:
        check_top_k(top_k)
    if target_recall is not None:
        check_target_recall(target_recall)
    for asset in asset_files:
        if not os.path.isfile(asset):
            raise EasyMatchError(f"{asset}: asset file not found")
    checkpoint = select_checkpoint(config, checkpoint_path)
    logger.info("exporting %s", checkpoint)
    model = load_model(run, checkpoint)
    with atomic_directory(export_dir) as tmp:
        written = write_towers(
            model,
            run,
            tmp,
            item_input_path=item_input_path,
            asset_files=asset_files,
            top_k=top_k,
            target_recall=target_recall,
        )
    final = os.path.abspath(export_dir)
    return {
        name: os.path.join(final, os.path.relpath(path, tmp))
        for name, path in written.items()
    }


def item_id_field(data: DataSpec, item_features: FeatureSet) -> str:
    """The corpus' item id column: the sampler's item_id_field, else the
    input column of the item tower's first feature (in config order)."""
    if data.sampler_item_id_field is not None:
        return data.sampler_item_id_field
    return next(iter(item_features.input_columns()))


def item_embeddings(
    item_saved_model: str, item_input_path: str, data: DataSpec, id_field: str
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, embeddings) of every corpus row, via the exported item tower;
    ids from the `id_field` column."""
    runner = TowerRunner(item_saved_model)
    kinds = reader_kinds(runner.dtypes)
    kinds.setdefault(id_field, "string")
    reader = make_table_reader(data, item_input_path, kinds, INDEX_BATCH_SIZE)
    id_type = arrow_types(item_input_path, data).get(id_field)
    ids, embeddings = [], []
    for batch, extra in signature_batches(reader, runner.dtypes, [id_field]):
        ids.append(typed_column(extra[id_field], id_type).to_numpy(False))
        embeddings.append(runner(batch))
    if not ids:
        raise EasyMatchError(f"{item_input_path}: the item corpus is empty")
    return np.concatenate(ids), np.concatenate(embeddings)


def user_queries(
    run: RunContext, user_saved_model: str
) -> tuple[np.ndarray, str]:
    """The index's query sample: the exported user tower on the first
    eval rows, or (no eval rows) none, for perturbed items instead."""
    path = run.config.eval_input_path
    if not path:
        return np.zeros((0, 0), np.float32), PERTURBED
    runner = TowerRunner(user_saved_model)
    reader = make_table_reader(
        run.specs.data, path, reader_kinds(runner.dtypes), QUERY_SAMPLE
    )
    first = next(signature_batches(reader, runner.dtypes), None)
    if first is None:
        return np.zeros((0, 0), np.float32), PERTURBED
    return runner(first[0]), f"user tower on eval rows of {path}"


def write_item_index(
    export_dir: str,
    ids: np.ndarray,
    embeddings: np.ndarray,
    similarity: str,
    target_recall: float,
    queries: np.ndarray,
    query_source: str,
) -> str:
    """Writes an index of the item embeddings tuned to the target recall
    to `<export_dir>/item_index`; returns that path."""
    path = os.path.join(export_dir, ITEM_INDEX)
    index = tune_index(
        embeddings, ids, similarity, target_recall, queries, query_source
    )
    index.save(path)
    tuning = index.info["tuning"]
    logger.info(
        "indexed %d items in %s: %s, recall@%d %.3f (%s)",
        len(ids),
        path,
        tuning["algorithm"],
        tuning["k"],
        tuning["recall"],
        tuning["reason"],
    )
    return path
