"""The eval result log in model_dir: one JSON line per evaluation."""

from __future__ import annotations

import json
import os

TRAIN_EVAL_RESULT = "train_eval_result_v2.txt"


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
