"""Checkpoint layout in model_dir and its restore rules."""

from __future__ import annotations

import logging
import os

import keras
import tensorflow as tf

from easymatch.checkpoint import table_slots
from easymatch.checkpoint.variables import variable_tree
from easymatch.errors import EasyMatchError

logger = logging.getLogger("easymatch")

CHECKPOINT_NAME = "model.ckpt"


def make_checkpoint(
    model: keras.Model,
    *,
    with_optimizers: bool = True,
    slots: dict | None = None,
    restoring: str | None = None,
) -> tf.train.Checkpoint:
    """Model and both optimizers; the step is the dense optimizer's.

    `model` is a MatchModel (compiled, for `with_optimizers`). `slots`
    replaces the sparse optimizers' objects (table_slots.slot_objects).
    When `restoring` a checkpoint, state that it may lack (a PS run's
    input counts) is left out unless it holds them.
    """
    optimizers = {}
    if with_optimizers:
        optimizers["dense_optimizer"] = model.optimizer
        if model.sparse_optimizer is not None:
            optimizers["sparse_optimizer"] = model.sparse_optimizer
        # Slots of tables sharded over ps tasks (training/ps_loop.py).
        sharded = getattr(model, "sharded_sparse", None)
        if sharded is not None:
            optimizers["sharded_sparse_optimizer"] = sharded.checkpoint_tree()
        if slots is not None:
            optimizers.pop("sharded_sparse_optimizer", None)
            optimizers.update(slots)
        # Where each PS worker's input stands (training/ps_input.py).
        inputs = getattr(model, "ps_input", None)
        if inputs is not None and _holds(restoring, inputs.checkpoint_key()):
            optimizers[inputs.checkpoint_key()] = inputs.positions
    return tf.train.Checkpoint(model=variable_tree(model), **optimizers)


def _holds(path: str | None, key: str) -> bool:
    if path is None:
        return True
    return any(
        name.startswith(f"{key}/") for name, _ in tf.train.list_variables(path)
    )


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
    model: keras.Model, path: str, *, with_optimizers: bool = True
) -> None:
    """Restores weights (and optimizer slots and step unless told not to)."""
    path = resolve_checkpoint(path)
    try:
        # Written with another set of sharded tables: each table's
        # optimizer slots are read by table.
        slots = (
            table_slots.slot_objects(model, path) if with_optimizers else None
        )
        if slots is not None:
            logger.info(
                "%s: written with other tables sharded; restoring the "
                "embedding tables' optimizer slots table by table",
                path,
            )
        checkpoint = make_checkpoint(
            model, with_optimizers=with_optimizers, slots=slots, restoring=path
        )
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


def checkpoint_path(model_dir: str, step: int) -> str:
    """The prefix of the checkpoint saved at `step` in model_dir."""
    return os.path.join(model_dir, f"{CHECKPOINT_NAME}-{step}")
