"""What the four samplers draw: weights, exclusions, hard negatives, seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from easymatch.data.samplers import (
    HardNegativeSampler,
    HardNegativeSamplerV2,
    NegativeSampler,
    NegativeSamplerV2,
)
from easymatch.data.samplers.edges import read_edge_table
from easymatch.data.samplers.tables import read_item_table
from easymatch.errors import DataError
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)

ITEM = "id:int64\tweight:float\tattrs:string"
EDGE = "userid:int64\titemid:int64\tweight:float"


def _write(path: Path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def _items(tmp_path: Path, weights: list[float]):
    rows = [f"{i}\t{w}\tc{i}:{i}" for i, w in enumerate(weights)]
    path = _write(tmp_path / "item.txt", ITEM, rows)
    return read_item_table(path, ["cate", "item_id"], ":", "\t")


def _edges(tmp_path: Path, name: str, pairs: list[tuple[int, int]], items):
    path = _write(tmp_path / name, EDGE, [f"{u}\t{i}\t1" for u, i in pairs])
    return path, read_edge_table(path, "\t", items, name == "hard.txt")


def _ids(values: list[int]) -> np.ndarray:
    return np.array([str(v).encode() for v in values], dtype=object)


def _chi2(counts: np.ndarray, weights: np.ndarray) -> float:
    expected = counts.sum() * weights / weights.sum()
    return float(((counts - expected) ** 2 / expected).sum())


def test_weighted_frequencies_and_log_q(tmp_path: Path) -> None:
    items = _items(tmp_path, [1, 2, 3, 4, 5])
    sampler = NegativeSampler(items, 200_000, "item_id", seed=3)
    out = sampler.sample({"item_id": _ids([77])})
    ids = out[NEG_ITEM_ID].astype(int)
    assert _chi2(np.bincount(ids, minlength=5), np.arange(1.0, 6)) < 18.47
    np.testing.assert_array_equal(out["item_id"].astype(int), ids)
    assert out["cate"][0] == b"c%d" % ids[0]
    np.testing.assert_allclose(out[NEG_LOG_Q], np.log((ids + 1) / 15), 1e-6)
    assert out[NEG_LOG_Q].dtype == np.float32
    assert HARD_NEG_INDICES not in out


def test_batch_items_excluded(tmp_path: Path) -> None:
    items = _items(tmp_path, [1, 2, 3, 4, 5, 0])
    sampler = NegativeSampler(items, 100_000, "item_id", seed=0)
    ids = sampler.sample({"item_id": _ids([1, 4, 1])})[NEG_ITEM_ID]
    counts = np.bincount(ids.astype(int), minlength=6)
    assert counts[1] == counts[4] == counts[5] == 0
    assert _chi2(counts[[0, 2, 3]], np.array([1.0, 3, 4])) < 13.82


def test_exclusion_of_nearly_all_weight_falls_back_exactly(
    tmp_path: Path,
) -> None:
    # Acceptance is ~1e-9 per draw: rejection alone would never finish.
    items = _items(tmp_path, [1e9, 1e9, 1, 1, 0])
    sampler = NegativeSampler(items, 1000, "item_id", seed=0)
    ids = sampler.sample({"item_id": _ids([0, 1])})[NEG_ITEM_ID]
    assert set(ids.astype(int)) == {2, 3}
    with pytest.raises(DataError, match=r"item.txt: the batch's items hold"):
        sampler.sample({"item_id": _ids([0, 1, 2, 3])})


def test_v2_never_returns_a_positive_of_the_rows_user(tmp_path: Path) -> None:
    items = _items(tmp_path, [1.0] * 20)
    rng = np.random.default_rng(0)
    pairs = [(u, i) for u in range(6) for i in range(20) if rng.random() < 0.7]
    # User 5 may only get item 19: the exact fallback has to find it.
    pairs = [p for p in pairs if p[0] != 5] + [(5, i) for i in range(19)]
    path, edges = _edges(tmp_path, "pos.txt", pairs, items)
    positive = {(u, i) for u, i in pairs}
    sampler = NegativeSamplerV2(
        items, 60, "item_id", "user_id", edges, path, seed=1
    )
    users, pos_items = [0, 5, 2, 9, 3, 5, 1], [19, 2, 2, 3, 4, 5, 6]
    batch = {"user_id": _ids(users), "item_id": _ids(pos_items)}
    for step in range(20):
        ids = sampler.sample(batch, step)[NEG_ITEM_ID].astype(int)
        assert len(ids) == 60
        per_row = math.ceil(60 / len(users))
        for slot, item in enumerate(ids):
            row = slot // per_row
            assert (users[row], item) not in positive
            assert item != pos_items[row]


def test_v2_user_with_every_item_positive_is_an_error(tmp_path: Path) -> None:
    items = _items(tmp_path, [1.0] * 4)
    path, edges = _edges(tmp_path, "pos.txt", [(1, i) for i in range(4)], items)
    sampler = NegativeSamplerV2(items, 4, "item_id", "user_id", edges, path)
    with pytest.raises(
        DataError, match=r"pos.txt: the positives of user b'1' hold"
    ):
        sampler.sample({"user_id": _ids([1]), "item_id": _ids([0])})


def _hard_pairs() -> list[tuple[int, int]]:
    return [(3, 4), (1, 2), (3, 0), (3, 1), (3, 2), (1, 0)]


def test_hard_negatives_per_user_with_cap(tmp_path: Path) -> None:
    items = _items(tmp_path, [1.0] * 6)
    _, hard = _edges(tmp_path, "hard.txt", _hard_pairs(), items)
    sampler = HardNegativeSampler(
        items, 2, "item_id", "user_id", hard, num_hard_sample=3, seed=0
    )
    batch = {"user_id": _ids([3, 8, 1, 3]), "item_id": _ids([5, 5, 5, 5])}
    out = sampler.sample(batch)
    np.testing.assert_array_equal(
        out[HARD_NEG_INDICES],
        [[0, 0], [0, 1], [0, 2], [2, 0], [2, 1], [3, 0], [3, 1], [3, 2]],
    )
    hard_ids = out[NEG_ITEM_ID][2:].astype(int)
    np.testing.assert_array_equal(hard_ids, [4, 0, 1, 2, 0, 4, 0, 1])
    assert out["cate"][2:].tolist() == [b"c%d" % i for i in hard_ids]
    assert len(out[NEG_LOG_Q]) == 2
    assert not set(out[NEG_ITEM_ID][:2].astype(int)) & {5}
    no_hard = sampler.sample({"user_id": _ids([8]), "item_id": _ids([5])})
    assert HARD_NEG_INDICES not in no_hard and len(no_hard["cate"]) == 2


def test_hard_v2_combines_both(tmp_path: Path) -> None:
    items = _items(tmp_path, [1.0] * 6)
    pos_path, pos = _edges(tmp_path, "pos.txt", [(3, 0), (3, 1)], items)
    _, hard = _edges(tmp_path, "hard.txt", _hard_pairs(), items)
    sampler = HardNegativeSamplerV2(
        items, 10, "item_id", "user_id", pos, pos_path, hard, 2, seed=0
    )
    out = sampler.sample({"user_id": _ids([3]), "item_id": _ids([2])})
    simple = out[NEG_ITEM_ID][:10].astype(int)
    assert not set(simple) & {0, 1, 2}
    np.testing.assert_array_equal(out[NEG_ITEM_ID][10:].astype(int), [4, 0])
    np.testing.assert_array_equal(out[HARD_NEG_INDICES], [[0, 0], [0, 1]])


def test_deterministic_for_seed_step_and_batch(tmp_path: Path) -> None:
    items = _items(tmp_path, [1.0] * 50)
    batch = {"item_id": _ids([1, 2, 3])}

    def draw(seed: int, step: int = 0, ids=batch) -> list[bytes]:
        sampler = NegativeSampler(items, 20, "item_id", seed=seed)
        return sampler.sample(ids, step)[NEG_ITEM_ID].tolist()

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)
    assert draw(5, step=1) != draw(5, step=0)
    assert draw(5, ids={"item_id": _ids([1, 2, 4])}) != draw(5)


def test_each_worker_draws_its_own_stream(tmp_path: Path) -> None:
    items = _items(tmp_path, [1.0] * 50)
    batch = {"item_id": _ids([1, 2, 3])}

    def draw(stream: int, seed: int = 5) -> list[bytes]:
        # A fresh sampler each time: a rerun (or resumed run) of worker
        # `stream` at the same step draws the same negatives.
        sampler = NegativeSampler(items, 20, "item_id", seed=seed)
        return sampler.for_stream(stream).sample(batch, 7)[NEG_ITEM_ID].tolist()

    # Same batch, same step: workers 0 and 1 draw different negatives.
    assert draw(0) != draw(1)
    assert draw(1) != draw(2)
    assert draw(1) == draw(1)
    assert draw(1, seed=6) != draw(1)
    # Worker 0 draws what one process with the same seed draws.
    one_process = NegativeSampler(items, 20, "item_id", seed=5)
    assert draw(0) == one_process.sample(batch, 7)[NEG_ITEM_ID].tolist()
