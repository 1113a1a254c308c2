"""The item index tuned to a target recall: ladder, bounds, choices."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_scann_index import clustered, overlap, run_tool

from easymatch.errors import EasyMatchError
from easymatch.export.brute_force import exact_search
from easymatch.export.index_tuning import (
    check_target_recall,
    leaves_ladder,
    perturbed_items,
    recall_bounds,
    tune_index,
)
from easymatch.export.scann_index import ItemIndex


def test_leaves_ladder_grows_by_half_from_1_percent_to_all():
    assert leaves_ladder(141) == [10, 15, 23, 35, 53, 80, 120, 141]
    ladder = [10, 15, 23, 35, 53, 80, 120, 180, 270, 405, 608, 912, 1000]
    assert leaves_ladder(1000) == ladder
    assert leaves_ladder(8) == [8]


def test_recall_bounds_by_hand():
    found = np.array([[1, 2], [3, 4]])
    exact = np.array([[2, 1], [3, 5]])
    mean, lower = recall_bounds(found, exact)
    # Shares 1 and 1/2: mean 0.75, std 0.25, standard error 0.25/√2.
    assert mean == 0.75
    assert lower == pytest.approx(0.75 - 2 * 0.25 / math.sqrt(2))


@pytest.mark.parametrize("target", [0.0, -0.5, 1.5, float("nan")])
def test_target_recall_outside_0_1_is_an_error(target):
    with pytest.raises(EasyMatchError, match="target recall must be in"):
        check_target_recall(target)
    with pytest.raises(EasyMatchError, match="target recall must be in"):
        tune_index(np.eye(3), np.arange(3), "INNER_PRODUCT", target)


def test_perturbed_items_sit_near_items():
    rng = np.random.default_rng(0)
    items = rng.standard_normal((500, 8)).astype(np.float32)
    queries = perturbed_items(items, 50)
    assert queries.shape == (50, 8)
    np.testing.assert_array_equal(queries, perturbed_items(items, 50))
    nearest = np.linalg.norm(queries[:, None] - items[None], axis=2).min(1)
    # Noise of half the spread (std 1 here) in 8 dimensions: ‖n‖ ≈ 1.4.
    assert 0.5 < np.median(nearest) < 2.5


def test_small_corpus_is_brute_force():
    items = np.random.default_rng(1).standard_normal((300, 4))
    users = np.random.default_rng(2).standard_normal((7, 4))
    index = tune_index(items, np.arange(300), "COSINE", 0.9, users, "users")
    tuning = index.info["tuning"]
    assert index.params == {"algorithm": "brute_force"}
    assert tuning["recall"] == 1.0 and tuning["scann_qps"] is None
    assert tuning["queries"] == {"source": "users", "count": 7}
    assert tuning["reason"] == "fewer than 20000 items"
    assert tuning["brute_force_qps"] > 0


def check_consistent(index: ItemIndex, target: float, leaves: int) -> None:
    """What index.json says matches the choice, whatever the timings."""
    tuning = index.info["tuning"]
    trials = tuning["trials"]
    assert [t["num_leaves_to_search"] for t in trials] == sorted(
        t["num_leaves_to_search"] for t in trials
    )
    last = trials[-1]
    assert tuning["scann_qps"] == last["qps"]
    if tuning["algorithm"] == "tree_ah":
        assert tuning["reason"] == "met the target"
        assert last["recall_lower_bound"] >= target
        assert last["qps"] >= tuning["brute_force_qps"]
        assert (
            index.params["num_leaves_to_search"]
            == (last["num_leaves_to_search"])
        )
        assert index.params["reorder"] == last["reorder"]
    else:
        assert tuning["recall"] == 1.0
        if tuning["reason"] == "no setting met the target":
            assert last["num_leaves_to_search"] == leaves
        else:
            assert last["qps"] < tuning["brute_force_qps"]
    # Only the last setting may meet the target.
    assert all(t["recall_lower_bound"] < target for t in trials[:-1])


@pytest.mark.parametrize("kind", ["clustered", "uniform"])
def test_tuned_index_holds_its_recall_on_new_queries(kind, tmp_path):
    rng = np.random.default_rng(3)
    if kind == "clustered":
        # New queries from the items' distribution: the same clusters.
        items, held_out = np.split(clustered(rng, 30_300, 32, 300), [30_000])
    else:
        items = rng.uniform(-1, 1, (30_000, 32)).astype(np.float32)
        held_out = rng.uniform(-1, 1, (300, 32)).astype(np.float32)
    index = tune_index(items, np.arange(30_000), "INNER_PRODUCT", 0.95)
    tuning = index.info["tuning"]
    check_consistent(index, 0.95, 173)  # round(√30000) leaves
    assert tuning["queries"] == {
        "source": "perturbed item embeddings",
        "count": 1000,
    }
    # Saved and loaded, it searches with the tuned settings.
    index.save(str(tmp_path / "i"))
    loaded = ItemIndex.load(str(tmp_path / "i"))
    assert json.loads((tmp_path / "i" / "index.json").read_text()) == (
        index.info
    )
    rows, _ = loaded.search_rows(held_out, 100)
    assert overlap(rows, exact_search(items, held_out, 100)[0]) >= 0.94


def test_given_params_are_measured_not_tuned():
    rng = np.random.default_rng(5)
    items = clustered(rng, 3000, 8, 30)
    given = {"algorithm": "tree_ah", "num_leaves_to_search": 2}
    index = tune_index(items, np.arange(3000), "INNER_PRODUCT", params=given)
    tuning = index.info["tuning"]
    assert index.params["num_leaves_to_search"] == 2
    assert tuning["reason"] == "given" and len(tuning["trials"]) == 1
    assert tuning["recall"] == tuning["trials"][0]["recall"] < 1.0


def test_create_scann_index_tunes_on_given_queries(tmp_path):
    rng = np.random.default_rng(6)
    items = rng.standard_normal((40, 4)).tolist()
    pq.write_table(
        pa.table({"item_id": np.arange(40), "item_tower_emb": items}),
        tmp_path / "items.parquet",
    )
    users = rng.standard_normal((9, 4)).tolist()
    pq.write_table(
        pa.table({"user_tower_emb": users}), tmp_path / "users.parquet"
    )
    common = [
        f"--item_embedding_input={tmp_path / 'items.parquet'}",
        f"--index_output_dir={tmp_path / 'index'}",
    ]
    result = run_tool(
        "create_scann_index.py",
        *common,
        f"--query_embedding_input={tmp_path / 'users.parquet'}",
        "--target_recall=0.99",
    )
    assert result.returncode == 0, result.stderr
    tuning = json.loads(result.stdout)["tuning"]
    assert tuning["target_recall"] == 0.99
    assert tuning["queries"]["count"] == 9
    assert tuning["queries"]["source"].startswith("user_tower_emb of ")
    result = run_tool("create_scann_index.py", *common, "--target_recall=0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "easymatch: error: target recall must be in (0, 1], got 0"
    ]
