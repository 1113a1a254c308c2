"""easymatch-only negative options: protos, validation, model kwargs."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import DEMO_CONFIG, ROOT

from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError
from easymatch.models.builder import model_kwargs
from easymatch.protos import match_model_pb2
from easymatch.run_context import RunContext

OPTIONS = ("logq_correction", "remove_accidental_hits", "mixed_negatives")
MIXED = str(ROOT / "samples" / "dssm_mixed_negatives.config")


def load(path, **edits):
    return load_pipeline_config(str(path), json.dumps(edits))


def test_fields_are_easymatch_numbers_and_off_by_default():
    for message in (match_model_pb2.DSSM, match_model_pb2.DSSMV2):
        fields = message.DESCRIPTOR.fields_by_name
        for name in (*OPTIONS, "item_id_field"):
            assert fields[name].number >= 1000, name
        for name in OPTIONS:
            assert fields[name].default_value is False
    config = load_pipeline_config(str(ROOT / "samples" / "dssm_taobao.config"))
    dssm = config.model_config.dssm
    assert not any(getattr(dssm, name) for name in OPTIONS)
    sampler = config.data_config.negative_sampler
    assert (sampler.num_sample, sampler.item_id_field) == (1024, "adgroup_id")


def test_options_reach_the_model_kwargs():
    config = load_pipeline_config(MIXED)
    kwargs = model_kwargs(RunContext(config).specs.model)
    assert all(kwargs[name] for name in OPTIONS)
    assert not kwargs["in_batch_negative"]


@pytest.mark.parametrize(
    ("path", "edits", "message"),
    [
        (
            DEMO_CONFIG,
            {"model_config.dssm.mixed_negatives": True},
            r"model_config.dssm.mixed_negatives: needs a sampler",
        ),
        (
            MIXED,
            {"model_config.dssm.in_batch_negative": True},
            r"mixed_negatives: cannot be combined with in_batch_negative",
        ),
        (
            DEMO_CONFIG,
            {"model_config.dssm.logq_correction": True},
            r"model_config.dssm.item_id_field: must name the item id column",
        ),
        (
            DEMO_CONFIG,
            {"model_config.dssm.remove_accidental_hits": True},
            r"model_config.dssm.item_id_field: must name the item id column",
        ),
        (
            MIXED,
            {"model_config.dssm.item_id_field": "cate_id"},
            r"item_id_field: \"cate_id\" differs from the sampler's "
            r"item_id_field \"adgroup_id\"",
        ),
        (
            MIXED,
            {"model_config.dssm.item_id_field": ""},
            r"item_id_field: must not be empty",
        ),
    ],
    ids=[
        "mixed_without_sampler",
        "mixed_with_in_batch",
        "logq_without_ids",
        "hits_without_ids",
        "other_id_field",
        "empty_id_field",
    ],
)
def test_rejected(path, edits: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        load(path, **edits)


def test_accepted_combinations(caplog: pytest.LogCaptureFixture):
    # logQ of sampled negatives needs no item ids; in-batch logQ without a
    # sampler reads item_id_field; mixed with a hard sampler is fine.
    load(MIXED, **{"model_config.dssm.mixed_negatives": False})
    load(
        DEMO_CONFIG,
        **{
            "model_config.dssm.logq_correction": True,
            "model_config.dssm.remove_accidental_hits": True,
            "model_config.dssm.item_id_field": "adgroup_id",
        },
    )
    load(
        ROOT / "samples" / "dssm_hard_negative_sampler.config",
        **{f"model_config.dssm.{name}": True for name in OPTIONS},
    )
    with caplog.at_level(logging.WARNING, logger="easymatch.config"):
        load(DEMO_CONFIG, **{"model_config.dssm.item_id_field": "adgroup_id"})
    assert "item_id_field: has no effect" in caplog.text
