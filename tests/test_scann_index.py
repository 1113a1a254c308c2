"""The item index: defaults, ScaNN vs exact, save/load, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import ROOT

from easymatch.errors import DataError, EasyMatchError
from easymatch.export.scann_index import (
    BRUTE_FORCE_MAX_ITEMS,
    ItemIndex,
    build_index,
    default_params,
    exact_search,
    normalize,
)


def clustered(rng, n: int, dim: int, clusters: int) -> np.ndarray:
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    noise = 0.3 * rng.standard_normal((n, dim)).astype(np.float32)
    return centers[rng.integers(0, clusters, n)] + noise


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    shares = [
        len(np.intersect1d(x, y)) / len(y) for x, y in zip(a, b, strict=True)
    ]
    return float(np.mean(shares))


def test_default_params_follow_corpus_size():
    assert default_params(BRUTE_FORCE_MAX_ITEMS - 1, 64) == {
        "algorithm": "brute_force"
    }
    big = default_params(1_000_000, 64)
    assert big == {
        "algorithm": "tree_ah",
        "num_leaves": 1000,
        "num_leaves_to_search": 50,
        "training_sample_size": 100_000,
        "dims_per_block": 2,
        "anisotropic_quantization_threshold": 0.2,
        "reorder": 1000,
    }
    small_tree = default_params(BRUTE_FORCE_MAX_ITEMS, 16)
    assert small_tree["num_leaves"] == 141
    assert small_tree["num_leaves_to_search"] == 20


@pytest.mark.parametrize("similarity", ["INNER_PRODUCT", "COSINE"])
def test_brute_force_is_exact(similarity):
    rng = np.random.default_rng(0)
    items = rng.standard_normal((500, 8)).astype(np.float32) * 3
    queries = rng.standard_normal((20, 8)).astype(np.float32)
    index = build_index(items, np.arange(500) + 1000, similarity)
    assert index.params == {"algorithm": "brute_force"}
    ids, scores = index.search(queries, 5)
    if similarity == "COSINE":
        items, queries = normalize(items), normalize(queries)
    full = queries @ items.T
    expected = np.argsort(-full, axis=1)[:, :5]
    np.testing.assert_array_equal(ids, (expected + 1000).astype(str))
    np.testing.assert_allclose(
        scores, np.take_along_axis(full, expected, 1), rtol=1e-5
    )


def test_tree_agrees_with_exact_at_high_reorder():
    rng = np.random.default_rng(1)
    items = clustered(rng, 4000, 16, 40)
    queries = clustered(rng, 100, 16, 40)
    everything = {"num_leaves_to_search": 63, "reorder": 4000}
    index = build_index(items, np.arange(4000), "COSINE", everything)
    assert index.params["num_leaves"] == 63  # round(sqrt(4000))
    rows, scores = index.search_rows(queries, 50)
    exact_rows, exact_scores = index.exact_search_rows(queries, 50)
    assert overlap(rows, exact_rows) == 1.0
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)
    # The default 5% of leaves still finds nearly all on clustered data.
    default = build_index(items, np.arange(4000), "COSINE", {"reorder": 4000})
    assert overlap(default.search_rows(queries, 50)[0], exact_rows) >= 0.95


def test_save_load_moves_with_the_directory(tmp_path):
    rng = np.random.default_rng(2)
    items = clustered(rng, 3000, 8, 20)
    queries = rng.standard_normal((10, 8)).astype(np.float32)
    ids = np.array([f"item{i}" for i in range(3000)])
    index = build_index(items, ids, "INNER_PRODUCT", {"algorithm": "tree_ah"})
    index.save(str(tmp_path / "a"))
    shutil.move(tmp_path / "a", tmp_path / "b")
    loaded = ItemIndex.load(str(tmp_path / "b"))
    got, want = loaded.search(queries, 7), index.search(queries, 7)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    lines = (tmp_path / "b" / "item_ids.txt").read_text().splitlines()
    assert lines == list(ids)
    info = json.loads((tmp_path / "b" / "index.json").read_text())
    assert info["similarity"] == "INNER_PRODUCT"
    assert info["num_items"] == 3000 and info["dim"] == 8
    assert info["params"]["num_leaves"] == 55


def test_search_edges():
    items = np.eye(3, dtype=np.float32)
    index = build_index(items, np.array([7, 8, 9]), "INNER_PRODUCT")
    ids, scores = index.search(np.array([[0, 1, 0.5]]), 10)
    assert ids.tolist() == [["8", "9", "7"]]  # k capped at 3 items
    assert index.search(np.zeros((0, 3)), 2)[0].shape == (0, 2)
    with pytest.raises(EasyMatchError, match=r"\[Q, 3\]"):
        index.search(np.zeros((2, 4)), 2)
    # Rows ScaNN did not fill (-1) become "", and the id table is untouched.
    assert index.ids_of(np.array([[2, -1], [-1, 0]])).tolist() == [
        ["9", ""],
        ["", "7"],
    ]
    assert index.ids.tolist() == ["7", "8", "9"]


def test_exact_search_excludes_and_pads():
    items = np.eye(3, dtype=np.float32)
    queries = np.array([[1, 2, 3], [3, 2, 1]], dtype=np.float32)
    exclude = [np.array([2]), np.array([0, 1, 2])]
    rows, scores = exact_search(items, queries, 2, exclude)
    assert rows.tolist() == [[1, 0], [-1, -1]]
    assert scores[0].tolist() == [2, 1] and np.isneginf(scores[1]).all()


@pytest.mark.parametrize(
    "ids, params, message",
    [
        (np.array([1, 2, 2]), None, "item id '2' occurs 2 times"),
        (np.array([1, None, 3], dtype=object), None, "row 2 is null"),
        (np.array([1, 2]), None, "2 ids for 3 embeddings"),
        (np.array([1, 2, 3]), {"leaves": 3}, "'leaves'"),
        (np.array([1, 2, 3]), {"algorithm": "hnsw"}, "'hnsw'"),
    ],
)
def test_build_errors(ids, params, message):
    with pytest.raises(EasyMatchError, match=message):
        build_index(np.eye(3), ids, "INNER_PRODUCT", params)


def test_unknown_similarity():
    with pytest.raises(EasyMatchError, match="EUCLID"):
        build_index(np.eye(3), np.arange(3), "EUCLID")


def run_tool(script: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=env,
    )


def test_create_scann_index_cli(tmp_path):
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((50, 4)).astype(np.float32)
    joined = [",".join(map(str, row)) for row in emb.tolist()]
    pq.write_table(
        pa.table({"adgroup_id": np.arange(50) * 10, "emb": joined}),
        tmp_path / "part-0.parquet",
    )
    out = tmp_path / "index"
    result = run_tool(
        "create_scann_index.py",
        f"--item_embedding_input={tmp_path}",
        f"--index_output_dir={out}",
        "--id_field=adgroup_id",
        "--embedding_field=emb",
        "--similarity=COSINE",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["similarity"] == "COSINE"
    index = ItemIndex.load(str(out))
    ids, _ = index.search(emb[:3], 1)
    assert ids[:, 0].tolist() == ["0", "10", "20"]

    result = run_tool(
        "create_scann_index.py",
        f"--item_embedding_input={tmp_path}",
        f"--index_output_dir={out}",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"easymatch: error: {tmp_path / 'part-0.parquet'}: column 'item_id' "
        "not found (columns: adgroup_id, emb)"
    ]


def test_embedding_table_errors(tmp_path):
    from easymatch.export.embedding_table import load_item_embeddings

    path = tmp_path / "e.parquet"
    pq.write_table(
        pa.table({"item_id": [1, 2], "e": [[1.0, 2.0], [3.0]]}), path
    )
    with pytest.raises(DataError, match=r"'e', row 2: 1 values, row 1 has 2"):
        load_item_embeddings(str(path), "item_id", "e")
