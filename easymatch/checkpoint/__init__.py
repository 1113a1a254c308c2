"""Checkpoint I/O shared by training, evaluation and export."""

from easymatch.checkpoint.eval_results import (
    TRAIN_EVAL_RESULT,
    append_eval_result,
    read_eval_results,
)
from easymatch.checkpoint.store import (
    CHECKPOINT_NAME,
    checkpoint_path,
    checkpoint_step,
    latest_readable,
    make_checkpoint,
    make_manager,
    resolve_checkpoint,
    restore,
    unreadable,
)
from easymatch.checkpoint.variables import sublayers, variable_tree

__all__ = [
    "CHECKPOINT_NAME",
    "TRAIN_EVAL_RESULT",
    "append_eval_result",
    "checkpoint_path",
    "checkpoint_step",
    "latest_readable",
    "make_checkpoint",
    "make_manager",
    "read_eval_results",
    "resolve_checkpoint",
    "restore",
    "sublayers",
    "unreadable",
    "variable_tree",
]
