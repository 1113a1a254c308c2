"""Checkpoint layout in model_dir, restore rules and the eval result log."""

from __future__ import annotations

import json
import logging
import os

import keras
import tensorflow as tf

from easymatch.errors import EasyMatchError
from easymatch.models.match_model import MatchModel

logger = logging.getLogger("easymatch")

CHECKPOINT_NAME = "model.ckpt"
TRAIN_EVAL_RESULT = "train_eval_result_v2.txt"


def variable_tree(layer: keras.layers.Layer) -> dict:
    """The layer's variables as nested dicts keyed by structure.

    tf.train.Checkpoint does not see variables or layers that Keras 3 keeps
    in lists and dicts, and Keras' own variable paths carry per-process
    name counters ("dense_3"). Sub-layer position and class are stable for
    a given config, so a checkpoint restores in any process.
    """
    nested = {id(w) for child in layer._layers for w in child.weights}
    tree: dict = {
        f"v_{weight.name}": weight.value
        for weight in layer.weights
        if id(weight) not in nested
    }
    # Dropout's random streams: a resumed run draws the masks an
    # uninterrupted one would.
    for index, generator in enumerate(layer._seed_generators):
        tree[f"seed_{index}"] = generator.state.value
    for index, child in enumerate(layer._layers):
        tree[f"{index}_{type(child).__name__}"] = variable_tree(child)
    return tree


def make_checkpoint(
    model: MatchModel, *, with_optimizers: bool = True
) -> tf.train.Checkpoint:
    """Model and both optimizers; the step is the dense optimizer's."""
    optimizers = {}
    if with_optimizers:
        optimizers["dense_optimizer"] = model.optimizer
        if model.sparse_optimizer is not None:
            optimizers["sparse_optimizer"] = model.sparse_optimizer
    return tf.train.Checkpoint(model=variable_tree(model), **optimizers)


def make_manager(
    checkpoint: tf.train.Checkpoint, model_dir: str, keep_checkpoint_max: int
) -> tf.train.CheckpointManager:
    # TF writes the `checkpoint` state file atomically after the data, so a
    # kill mid-save leaves the previous checkpoint as the latest one.
    return tf.train.CheckpointManager(
        checkpoint,
        model_dir,
        max_to_keep=keep_checkpoint_max or None,
        checkpoint_name=CHECKPOINT_NAME,
    )


def resolve_checkpoint(path: str) -> str:
    """A checkpoint prefix, or the latest checkpoint in a directory."""
    if tf.io.gfile.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise EasyMatchError(f"{path}: no checkpoint found")
        return latest
    if not tf.io.gfile.exists(f"{path}.index"):
        raise EasyMatchError(f"{path}: checkpoint not found")
    return path


def restore(
    model: MatchModel, path: str, *, with_optimizers: bool = True
) -> None:
    """Restores weights (and optimizer slots and step unless told not to)."""
    path = resolve_checkpoint(path)
    checkpoint = make_checkpoint(model, with_optimizers=with_optimizers)
    try:
        status = checkpoint.read(path)
        status.assert_existing_objects_matched()
        status.expect_partial()
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise EasyMatchError(
            f"{path}: checkpoint does not match the model: {first_line}"
        ) from None


def unreadable(path: str) -> str | None:
    """Why the checkpoint at `path` cannot be read whole, or None.

    Reads every tensor: a truncated data file fails only on the tensors
    past its end.
    """
    try:
        reader = tf.train.load_checkpoint(path)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as error:  # noqa: BLE001 - any failure is the reason
        lines = str(error).strip().splitlines()
        return lines[0] if lines else type(error).__name__
    return None


def latest_readable(manager: tf.train.CheckpointManager) -> str | None:
    """The newest of the manager's checkpoints that reads whole, or None
    if it has none; each unreadable newer one is named in a warning.
    If it has some but none reads, that is an EasyMatchError."""
    candidates = list(reversed(manager.checkpoints))
    if not candidates and manager.latest_checkpoint:
        candidates = [manager.latest_checkpoint]
    problems = []
    for index, path in enumerate(candidates):
        reason = unreadable(path)
        if reason is None:
            return path
        problems.append(f"{os.path.basename(path)}: {reason}")
        if index + 1 < len(candidates):
            logger.warning(
                "%s: unreadable (%s); using %s",
                path,
                reason,
                candidates[index + 1],
            )
    if problems:
        raise EasyMatchError(
            f"{manager.directory}: no readable checkpoint "
            f"({'; '.join(problems)})"
        )
    return None


def checkpoint_step(path: str) -> int:
    """The global step a checkpoint was saved at (from its file name)."""
    return int(os.path.basename(path).rsplit("-", 1)[-1])


def append_eval_result(model_dir: str, step: int, metrics: dict) -> None:
    record = {"global_step": step, **metrics}
    with open(os.path.join(model_dir, TRAIN_EVAL_RESULT), "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def read_eval_results(model_dir: str) -> list[dict]:
    path = os.path.join(model_dir, TRAIN_EVAL_RESULT)
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
