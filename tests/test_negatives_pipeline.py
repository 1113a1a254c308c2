"""Samplers in the training input: rows, loss inputs, resumed draws."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf
from conftest import DEMO_CONFIG, ROOT, demo_edits

from easymatch import side_inputs as keys
from easymatch.config import load_pipeline_config
from easymatch.data.dataset import (
    hash_ids,
    int64_candidates,
    make_dataset,
)
from easymatch.run_context import RunContext

SAMPLER_CONFIGS = [
    "dssm_mixed_negatives",
    "dssm_negative_sampler_v2",
    "dssm_hard_negative_sampler",
    "dssm_hard_negative_sampler_v2",
]
TABLES = {
    "input_path": "item_table.txt",
    "item_input_path": "item_table.txt",
    "user_input_path": "user_table.txt",
    "pos_edge_input_path": "pos_edge.txt",
    "hard_neg_edge_input_path": "hard_neg_edge.txt",
}
NUM_SAMPLE = 16


def sample_path(name: str) -> str:
    return str(ROOT / "samples" / f"{name}.config")


def sampler_edits(name: str, data: Path, model_dir: Path, **extra) -> str:
    """demo_edits, plus the sampler's tables in `data` and 16 negatives."""
    config = load_pipeline_config(sample_path(name))
    kind = config.data_config.WhichOneof("sampler")
    sampler = getattr(config.data_config, kind)
    edits = {f"data_config.{kind}.num_sample": NUM_SAMPLE}
    if sampler.HasField("num_eval_sample"):
        edits[f"data_config.{kind}.num_eval_sample"] = NUM_SAMPLE // 2
    for field, table in TABLES.items():
        if field in type(sampler).DESCRIPTOR.fields_by_name:
            edits[f"data_config.{kind}.{field}"] = str(data / table)
    edits.update(extra)
    return demo_edits(data, model_dir, **edits)


def first_batches(config, count: int, *, training=True, **kwargs) -> list:
    run = RunContext(config)
    reader = run.reader(config.train_input_path, training=training)
    dataset = make_dataset(
        reader,
        run.transform,
        num_epochs=1,
        negatives=run.negatives(training=training),
        **kwargs,
    )
    return [(features, side) for features, side, _, _ in dataset.take(count)]


OPTIONS = {
    "model_config.dssm.mixed_negatives": True,
    "model_config.dssm.logq_correction": True,
    "model_config.dssm.remove_accidental_hits": True,
}


def test_batches_carry_negatives_and_loss_inputs(taobao_data, tmp_path):
    edits = sampler_edits(
        "dssm_hard_negative_sampler_v2",
        taobao_data,
        tmp_path,
        **{"data_config.shuffle": False, **OPTIONS},
    )
    config = load_pipeline_config(
        sample_path("dssm_hard_negative_sampler_v2"), edits
    )
    features, side = first_batches(config, 1)[0]
    # The loss inputs ride beside the features, not among them.
    assert set(side) == {
        keys.HARD_NEG_INDICES,
        keys.ITEM_ID,
        keys.NEG_ITEM_ID,
        keys.NEG_LOG_Q,
    }
    assert not set(side) & set(features)
    n_hard = int(tf.shape(side[keys.HARD_NEG_INDICES])[0])
    assert side[keys.HARD_NEG_INDICES].dtype == tf.int64
    assert n_hard > 0
    assert features["user_id"].shape[0] == 32
    for name in ("adgroup_id", "cate_id", "price"):
        assert features[name].shape[0] == 32 + NUM_SAMPLE + n_hard
    # The positives' ids: the first 32 rows' adgroup_id, as hashed text.
    train = pq.read_table(taobao_data / "train.parquet").slice(0, 32)
    positives = [str(v) for v in train.column("adgroup_id").to_pylist()]
    np.testing.assert_array_equal(
        side[keys.ITEM_ID], hash_ids(tf.constant(positives))
    )
    # Negative rows of the adgroup_id feature (num_buckets: the id) are the
    # items of __neg_item_id__, whose log q follows the table's weights.
    rows = features["adgroup_id"][32:, 0]
    negative_ids = side[keys.NEG_ITEM_ID]
    assert negative_ids.dtype == tf.int64
    np.testing.assert_array_equal(
        negative_ids, hash_ids(tf.strings.as_string(rows))
    )
    table = np.loadtxt(
        taobao_data / "item_table.txt", skiprows=1, usecols=(0, 1)
    )
    weight = dict(zip(table[:, 0].astype(int), table[:, 1], strict=True))
    log_q = np.log([weight[i] for i in rows[:NUM_SAMPLE].numpy()])
    log_q -= np.log(table[:, 1].sum())
    np.testing.assert_allclose(side[keys.NEG_LOG_Q], log_q, rtol=1e-5)


def test_loss_inputs_only_for_the_options_that_read_them(taobao_data, tmp_path):
    name = "dssm_negative_sampler_v2"
    config = load_pipeline_config(
        sample_path(name), sampler_edits(name, taobao_data, tmp_path)
    )
    # An eval batch: num_eval_sample negatives.
    features, side = first_batches(config, 1, training=False)[0]
    loss_keys = {
        keys.HARD_NEG_INDICES,
        keys.ITEM_ID,
        keys.NEG_ITEM_ID,
        keys.NEG_LOG_Q,
    }
    assert not loss_keys & set(features)
    assert side == {}
    assert features["brand"].shape[0] == 32 + NUM_SAMPLE // 2
    # In-batch logQ without a sampler reads item_id_field.
    edits = demo_edits(
        taobao_data,
        tmp_path,
        **{
            "model_config.dssm.logq_correction": True,
            "model_config.dssm.item_id_field": "adgroup_id",
        },
    )
    config = load_pipeline_config(str(DEMO_CONFIG), edits)
    features, side = first_batches(config, 1)[0]
    assert not loss_keys & set(features)
    assert set(side) == {keys.ITEM_ID}
    assert side[keys.ITEM_ID].shape == [32]


def test_resumed_stream_draws_the_same_negatives(taobao_data, tmp_path):
    name = "dssm_hard_negative_sampler"
    # Shuffled: the reader skips after shuffling, the sampler by step.
    edits = sampler_edits(name, taobao_data, tmp_path, **OPTIONS)
    config = load_pipeline_config(sample_path(name), edits)
    straight = first_batches(config, 4)
    resumed = first_batches(config, 2, skip_batches=2, first_step=2)
    for one, two in zip(straight[2:], resumed, strict=True):
        for part, other in zip(one, two, strict=True):
            assert part.keys() == other.keys()
            for key in part:
                np.testing.assert_array_equal(
                    part[key], other[key], err_msg=key
                )
    # Each batch draws anew.
    assert not np.array_equal(
        straight[0][1][keys.NEG_ITEM_ID], straight[1][1][keys.NEG_ITEM_ID]
    )


def test_sampler_values_of_an_integer_column_are_still_split(
    taobao_data, tmp_path
):
    # cate_id is an integer column in the files, but the negatives' values
    # come from the sampler's text table, where one may hold two ids.
    lines = (taobao_data / "item_table.txt").read_text().splitlines()
    rows = []
    for line in lines[1:]:
        item, weight, attrs = line.split("\t")
        values = attrs.split("\x02")
        values[1] = "7\x1d8"  # cate_id, the second attr field
        rows.append("\t".join([item, weight, "\x02".join(values)]))
    table = tmp_path / "item_table.txt"
    table.write_text("\n".join([lines[0], *rows]) + "\n")
    edits = json.loads(
        sampler_edits("dssm_negative_sampler_v2", taobao_data, tmp_path)
    )
    edits["data_config.negative_sampler_v2.item_input_path"] = str(table)
    config = load_pipeline_config(
        sample_path("dssm_negative_sampler_v2"), json.dumps(edits)
    )
    features, _ = first_batches(config, 1)[0]
    negatives = features["cate_id"][32:].numpy()
    assert negatives.shape == (NUM_SAMPLE, 2)
    assert (negatives == [7, 8]).all()
    assert (features["cate_id"][:32, 1].numpy() == -1).all()


def test_int64_candidates_leave_text_where_text_is_matched(
    taobao_data, tmp_path
):
    plain = load_pipeline_config(
        str(DEMO_CONFIG), demo_edits(taobao_data, tmp_path)
    )
    run = RunContext(plain)
    candidates = int64_candidates(run.specs.data, run.feature_set)
    assert {"user_id", "cms_segid", "adgroup_id", "cate_id"} <= candidates
    # Sequences and raw features parse text.
    assert "click_50_seq__adgroup_id" not in candidates
    assert "price" not in candidates
    name = "dssm_hard_negative_sampler_v2"
    sampled = load_pipeline_config(
        sample_path(name), sampler_edits(name, taobao_data, tmp_path)
    )
    run = RunContext(sampled)
    candidates = int64_candidates(run.specs.data, run.feature_set)
    # The sampler extends item columns and matches user ids as text.
    assert "cms_segid" in candidates
    assert not {"user_id", "adgroup_id", "cate_id"} & candidates
