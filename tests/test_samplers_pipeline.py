"""build_sampler from the config and with_negatives in tf.data."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from easymatch.data.samplers import (
    HardNegativeSampler,
    HardNegativeSamplerV2,
    NegativeSampler,
    NegativeSamplerV2,
    build_sampler,
    with_negatives,
)
from easymatch.errors import ConfigError, DataError
from easymatch.protos import pipeline_pb2
from easymatch.side_inputs import (
    HARD_NEG_INDICES,
    NEG_ITEM_ID,
    NEG_LOG_Q,
)

ITEM = "id:int64\tweight:float\tattrs:string"
USER = "id:int64\tweight:float"
EDGE = "userid:int64\titemid:int64\tweight:float"


def _write(path: Path, header: str, rows: list[str]) -> str:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return str(path)


def _config(tmp_path: Path, kind: str, **fields: object):
    """A config whose sampler reads 10 items, 4 users and their edges."""
    items = [
        f"{i}\t1\t{i}\x02{i % 3}\x02{i * 0.5 if i else ''}" for i in range(10)
    ]
    edges = [f"{u}\t{(u + k) % 10}\t1" for u in range(4) for k in range(3)]
    paths = {
        "item": _write(tmp_path / "item.txt", ITEM, items),
        "user": _write(
            tmp_path / "user.txt", USER, [f"{u}\t1" for u in range(4)]
        ),
        "edge": _write(tmp_path / "edge.txt", EDGE, edges),
    }
    config = pipeline_pb2.EasyRecConfig()
    sampler = getattr(config.data_config, kind)
    sampler.num_sample = 6
    sampler.attr_fields.extend(["item_id", "cate_id", "price"])
    sampler.item_id_field = "item_id"
    sampler.attr_delimiter = "\x02"
    if kind == "negative_sampler":
        sampler.input_path = paths["item"]
    else:
        sampler.item_input_path = paths["item"]
        sampler.user_input_path = paths["user"]
        sampler.user_id_field = "user_id"
    if kind in ("negative_sampler_v2", "hard_negative_sampler_v2"):
        sampler.pos_edge_input_path = paths["edge"]
    if kind.startswith("hard"):
        sampler.hard_neg_edge_input_path = paths["edge"]
        sampler.num_hard_sample = 2
    for name, value in fields.items():
        setattr(sampler, name, value)
    return config


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        ("negative_sampler", NegativeSampler),
        ("negative_sampler_v2", NegativeSamplerV2),
        ("hard_negative_sampler", HardNegativeSampler),
        ("hard_negative_sampler_v2", HardNegativeSamplerV2),
    ],
)
def test_build_each_kind(tmp_path: Path, kind: str, cls: type) -> None:
    sampler = build_sampler(_config(tmp_path, kind), training=True, seed=0)
    assert type(sampler) is cls
    assert sampler.attr_fields == ["item_id", "cate_id", "price"]
    batch = {"item_id": np.array([b"1"], object), "user_id": np.array([b"2"])}
    out = sampler.sample(batch)
    assert len(out[NEG_LOG_Q]) == 6
    assert (HARD_NEG_INDICES in out) == kind.startswith("hard")


def test_no_sampler() -> None:
    assert build_sampler(pipeline_pb2.EasyRecConfig(), training=True) is None


def test_num_eval_sample(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config(tmp_path, "negative_sampler", num_eval_sample=3)
    assert build_sampler(config, training=True).num_sample == 6
    assert build_sampler(config, training=False).num_sample == 3
    config.data_config.negative_sampler.num_eval_sample = 0
    with caplog.at_level(logging.WARNING):
        assert build_sampler(config, training=False).num_sample == 6
    assert "num_eval_sample: 0 means num_sample" in caplog.text
    config.data_config.negative_sampler.ClearField("num_eval_sample")
    assert build_sampler(config, training=False).num_sample == 6


def test_config_and_table_errors(tmp_path: Path) -> None:
    config = _config(tmp_path, "negative_sampler", num_sample=1024)
    item = tmp_path / "item.txt"
    with pytest.raises(
        ConfigError,
        match=f"^data_config.negative_sampler.num_sample: 1024 exceeds the "
        f"10 items of {item}$",
    ):
        build_sampler(config, training=True)
    config = _config(tmp_path, "negative_sampler", num_eval_sample=11)
    with pytest.raises(ConfigError, match=r"num_eval_sample: 11 exceeds"):
        build_sampler(config, training=False)
    config = _config(tmp_path, "negative_sampler", field_delimiter="::")
    with pytest.raises(ConfigError, match=r"field_delimiter: '::' must be"):
        build_sampler(config, training=True)
    config = _config(tmp_path, "negative_sampler", num_sample=0)
    with pytest.raises(ConfigError, match=r"sampler.num_sample: must be > 0"):
        build_sampler(config, training=True)
    # Unset (0): every hard negative of the user, as GraphLearn's "full"
    # strategy in TorchEasyRec ignores the count.
    config = _config(tmp_path, "hard_negative_sampler", num_hard_sample=0)
    assert build_sampler(config, training=True).hard.cap > 2**62
    config = _config(tmp_path, "hard_negative_sampler")
    _write(tmp_path / "edge.txt", EDGE, ["1\t2\t1", "1\t42\t1"])
    with pytest.raises(DataError, match=r"edge.txt: line 3: itemid '42'"):
        build_sampler(config, training=True)
    config.data_config.hard_negative_sampler.user_input_path = "/no/user"
    with pytest.raises(DataError, match=r"^/no/user: sampler table not"):
        build_sampler(config, training=True)


def _dataset() -> tf.data.Dataset:
    columns = {
        "item_id": tf.constant([b"1", b"2", b"3", b"4", b"5"]),
        "user_id": tf.constant([b"0", b"9", b"1", b"2", b"3"]),
        "cate_id": tf.constant([b"1", b"2", b"0", b"1", b"2"]),
        "price": tf.constant([0.5, 1.0, 1.5, 2.0, 2.5]),
        "label": tf.constant([1.0] * 5),
    }
    return tf.data.Dataset.from_tensor_slices(columns).batch(3)


def test_with_negatives_rows_and_kinds(tmp_path: Path) -> None:
    config = _config(tmp_path, "hard_negative_sampler_v2")
    sampler = build_sampler(config, training=True, seed=0)
    kinds = {"item_id": "string", "cate_id": "string", "price": "float"}
    dataset = with_negatives(_dataset(), sampler, kinds)
    spec = dataset.element_spec
    assert spec["price"].dtype == tf.float32 and spec["price"].shape == [None]
    assert spec[HARD_NEG_INDICES].shape.as_list() == [None, 2]
    batches = list(dataset)
    for batch, size in zip(batches, [3, 2], strict=True):
        n_hard = len(batch[HARD_NEG_INDICES])
        for name in kinds:
            assert len(batch[name]) == size + 6 + n_hard
        assert len(batch["label"]) == len(batch["user_id"]) == size
        assert len(batch[NEG_ITEM_ID]) == 6 + n_hard
        assert len(batch[NEG_LOG_Q]) == 6
        negatives = batch[NEG_ITEM_ID].numpy().astype(int)
        np.testing.assert_array_equal(
            batch["item_id"].numpy()[size:].astype(int), negatives
        )
        price = batch["price"].numpy()[size:]
        expected = np.where(negatives == 0, np.nan, negatives * 0.5)
        np.testing.assert_array_equal(price, expected.astype(np.float32))
    # Users 0 and 1 of batch 0 have 3 edges each, capped at 2; 9 has none.
    np.testing.assert_array_equal(
        batches[0][HARD_NEG_INDICES], [[0, 0], [0, 1], [2, 0], [2, 1]]
    )
    again = list(with_negatives(_dataset(), sampler, kinds))
    for one, two in zip(batches, again, strict=True):
        assert (
            one[NEG_ITEM_ID].numpy().tolist()
            == two[NEG_ITEM_ID].numpy().tolist()
        )
    first = batches[0][NEG_ITEM_ID].numpy().tolist()
    resumed = next(iter(with_negatives(_dataset(), sampler, kinds, 1)))
    assert resumed[NEG_ITEM_ID].numpy().tolist() != first


def test_with_negatives_rejects_unknown_columns(tmp_path: Path) -> None:
    sampler = build_sampler(_config(tmp_path, "negative_sampler"), True)
    with pytest.raises(ConfigError, match=r"item column 'brand' is not in"):
        with_negatives(_dataset(), sampler, {"brand": "string"})
    no_ids = _dataset().map(lambda c: {"price": c["price"]})
    with pytest.raises(ConfigError, match=r"input column 'item_id' is not"):
        with_negatives(no_ids, sampler, {"price": "float"})


def test_with_negatives_reports_data_error(tmp_path: Path) -> None:
    sampler = build_sampler(_config(tmp_path, "negative_sampler"), True)
    bad = _dataset().map(lambda c: {**c, "item_id": tf.fill([3], "x")})
    with pytest.raises(tf.errors.OpError, match=r"DataError: column 'item_id'"):
        list(with_negatives(bad, sampler, {"price": "float"}))
