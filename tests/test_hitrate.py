"""Hitrate and recall@K against hand-computed cases, library and CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf
from test_scann_index import run_tool

from easymatch.errors import DataError
from easymatch.export.index_tuning import tune_index
from easymatch.hitrate import (
    drop_excluded,
    hit_metrics,
    overlap,
    popularity_top_k,
)
from easymatch.retrieval_eval import evaluate

# Items 10, 20, 30, 40 in 2-d; user 0 looks along x, user 1 along y, so
# by dot product user 0 ranks 10, 20, 30, 40 and user 1 30, 20, 10, 40.
ITEM_IDS = np.array([10, 20, 30, 40])
ITEMS = np.array([[1, 0], [0.8, 0.6], [0, 1], [-1, 0]], np.float32)
USERS = np.array([[1, 0], [0.1, 1], [1, 1]], np.float32)
# Train counts: 30 ×3, 10 ×2, 40 ×1, 20 never.
TRAIN_ITEMS = [30, 10, 30, 40, 10, 30]


def test_hit_metrics_by_hand():
    # u0: G = {A, B}, top-3 [A, C, D]; u1: G = {C}, top-3 [B, C, A].
    a, b, c, d = range(4)
    rows = np.array([[a, c, d], [b, c, a]])
    gt_rows, gt_sizes = [{a, b}, {c}], np.array([2, 1])
    got = hit_metrics(rows, gt_rows, gt_sizes, [1, 3])
    assert got == pytest.approx(
        {
            "hitrate@1": 1 / 3,  # (1 + 0) / (2 + 1)
            "recall@1": 0.25,  # (1/2 + 0/1) / 2
            "hitrate@3": 2 / 3,  # (1 + 1) / 3
            "recall@3": 0.75,  # (1/2 + 1/1) / 2
        }
    )


def test_ground_truth_outside_the_index_counts_as_a_miss():
    # |G| = 2 but only one of the two ids is in the index.
    got = hit_metrics(np.array([[0, -1]]), [{0}], np.array([2]), [2])
    assert got == {"hitrate@2": 0.5, "recall@2": 0.5}


def test_exclusion_and_popularity():
    rows = np.array([[3, 1, 2, 0], [0, -1, -1, -1]])
    kept = drop_excluded(rows, [np.array([1]), np.array([], int)], 2)
    assert kept.tolist() == [[3, 2], [0, -1]]
    counts = np.array([2, 0, 3, 1])
    top = popularity_top_k(counts, [np.array([0]), np.array([], int)], 3)
    assert top.tolist() == [[2, 3, 1], [2, 0, 3]]


def test_overlap():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[1, 2, 9], [4, 5, 6]])
    assert overlap(found, exact, [1, 3]) == pytest.approx(
        {"recall@1": 1.0, "recall@3": (2 / 3 + 1) / 2}
    )


class UserTower(tf.Module):
    """serving_default(user_id int64, gender string) → user_tower_emb."""

    def __init__(self) -> None:
        super().__init__()
        self.table = tf.Variable(USERS)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.int64, name="user_id"),
            tf.TensorSpec([None], tf.string, name="gender"),
        ]
    )
    def serve(self, user_id, gender):
        del gender  # only there to be fed as a string column
        return {"user_tower_emb": tf.gather(self.table, user_id)}


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("hitrate")
    tower = UserTower()
    tf.saved_model.save(
        tower,
        str(root / "x" / "user"),
        signatures={"serving_default": tower.serve},
    )
    index = tune_index(ITEMS, ITEM_IDS, "INNER_PRODUCT")
    index.save(str(root / "x" / "item_index"))
    # User 2 has no ground truth and is skipped; 99 is not an item.
    pq.write_table(
        pa.table(
            {
                "user_id": [0, 1, 2],
                "gender": ["F", "M", None],
                "gt_items": [[20, 99], [10], []],
                "seen_items": [[10], [], [30]],
            }
        ),
        root / "gt.parquet",
    )
    pq.write_table(pa.table({"item_id": TRAIN_ITEMS}), root / "train.parquet")
    return root


def test_evaluate_by_hand(export):
    report = evaluate(
        str(export / "x"),
        str(export / "gt.parquet"),
        [1, 3],
        exact=True,
        popularity_path=str(export / "train.parquet"),
    )
    # ScaNN and exact, user 0 without seen 10: [20, 30, 40]; user 1:
    # [30, 20, 10]. Popularity: user 0 [30, 40, 20], user 1 [30, 10, 40].
    model = {"hitrate@1": 1 / 3, "recall@1": 0.25}
    model.update({"hitrate@3": 2 / 3, "recall@3": 0.75})
    popular = {"hitrate@1": 0.0, "recall@1": 0.0}
    popular.update({"hitrate@3": 2 / 3, "recall@3": 0.75})
    assert report["scann"] == pytest.approx(model)
    assert report["exact"] == pytest.approx(model)
    assert report["popularity"] == pytest.approx(popular)
    assert report["scann_vs_exact"] == {"recall@1": 1.0, "recall@3": 1.0}
    assert report["users"] == 2 and report["gt_items"] == 3
    assert report["gt_items_not_in_index"] == 1
    assert report["seen_excluded"] == 1


def test_evaluate_without_exclusion(export):
    report = evaluate(
        str(export / "x"), str(export / "gt.parquet"), [1], seen_field=None
    )
    # User 0 now retrieves 10 first: no hit at 1 for anyone.
    assert report["scann"] == {"hitrate@1": 0.0, "recall@1": 0.0}
    assert "exact" not in report and "popularity" not in report


def test_null_integer_input_is_an_error(export):
    path = export / "null.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([0, None], pa.int64()),
                "gender": ["F", "M"],
                "gt_items": [[10], [20]],
            }
        ),
        path,
    )
    with pytest.raises(
        DataError, match=r"null.parquet: column 'user_id', row 2"
    ):
        evaluate(str(export / "x"), str(path), [1], seen_field=None)


def test_hitrate_cli(export):
    result = run_tool(
        "hitrate.py",
        f"--export_dir={export / 'x'}",
        f"--user_gt_input={export / 'gt.parquet'}",
        "--top_k=3,1",
        "--popularity",
        f"--train_input_path={export / 'train.parquet'}",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["scann"]["recall@3"] == pytest.approx(0.75)
    assert report["popularity"]["recall@1"] == 0.0
    assert report["seen_excluded"] == 1  # seen_items found by default
    tuning = report["index_tuning"]
    assert tuning["algorithm"] == "brute_force" and tuning["recall"] == 1.0
    assert tuning["reason"] == "fewer than 20000 items"
    assert tuning["queries"] == {
        "source": "perturbed item embeddings",
        "count": 4,
    }

    result = run_tool(
        "hitrate.py",
        f"--export_dir={export / 'x'}",
        f"--user_gt_input={export / 'gt.parquet'}",
        "--gt_items_field=truth",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"easymatch: error: {export / 'gt.parquet'}: column 'truth' not "
        "found (columns: user_id, gender, gt_items, seen_items)"
    ]
