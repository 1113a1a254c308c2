"""candidate_probability: proto field, default, validation, model kwargs."""

from __future__ import annotations

import json
import logging

import pytest
from conftest import ROOT

from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError
from easymatch.models.builder import model_kwargs
from easymatch.protos import match_model_pb2
from easymatch.run_context import RunContext

PLANTED = str(ROOT / "samples" / "dssm_planted.config")
FIELD = "model_config.dssm.candidate_probability"


def load(**edits):
    return load_pipeline_config(PLANTED, json.dumps(edits))


def test_field_number_is_in_logq_range_on_both_models():
    for message in (match_model_pb2.DSSM, match_model_pb2.DSSMV2):
        field = message.DESCRIPTOR.fields_by_name["candidate_probability"]
        assert 1225 <= field.number <= 1249


def test_unset_or_empty_means_exact_training_counts():
    empty = load(**{FIELD: {}})
    unset = load()
    unset.model_config.dssm.ClearField("candidate_probability")
    for config in (empty, unset):
        kwargs = model_kwargs(RunContext(config).specs.model)
        assert kwargs["candidate_probability"] == {"source": "train_counts"}


def test_streaming_options_reach_the_model():
    config = load(
        **{
            FIELD: {
                "streaming": {
                    "num_buckets": 4096,
                    "num_hashes": 3,
                    "alpha": 0.5,
                    "warm_start": True,
                }
            }
        }
    )
    kwargs = model_kwargs(RunContext(config).specs.model)
    assert kwargs["candidate_probability"] == {
        "source": "streaming",
        "num_buckets": 4096,
        "num_hashes": 3,
        "alpha": 0.5,
        "count_repeats": True,
        "warm_start": True,
    }


@pytest.mark.parametrize(
    ("streaming", "message"),
    [
        (
            {"num_buckets": 1000},
            r"candidate_probability.streaming.num_buckets: must be a power "
            r"of two >= 2, got 1000",
        ),
        (
            {"num_buckets": 1},
            r"streaming.num_buckets: must be a power of two",
        ),
        (
            {"num_buckets": 1 << 22, "num_hashes": 3},
            r"streaming.num_hashes: num_hashes \* log2\(num_buckets\) = "
            r"3 \* 22 must be in \[1, 63\]",
        ),
        (
            {"num_hashes": 0},
            r"streaming.num_hashes: .* must be in \[1, 63\]",
        ),
        ({"alpha": 0}, r"streaming.alpha: must be in \(0, 1\], got 0"),
        ({"alpha": 1.5}, r"streaming.alpha: must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_streaming_options_name_the_field(streaming: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        load(**{FIELD: {"streaming": streaming}})


def test_streaming_defaults_are_yi_et_al_with_count_repeats():
    config = load(**{FIELD: {"streaming": {}}})
    kwargs = model_kwargs(RunContext(config).specs.model)
    assert kwargs["candidate_probability"] == {
        "source": "streaming",
        "num_buckets": 1 << 20,
        "num_hashes": 2,
        "alpha": pytest.approx(0.01),
        "count_repeats": True,
        "warm_start": False,
    }


def test_bad_type_names_the_field():
    with pytest.raises(ConfigError, match="num_buckets"):
        load(**{FIELD: {"streaming": {"num_buckets": "many"}}})


def test_no_effect_without_in_batch_logq_is_a_warning(
    caplog: pytest.LogCaptureFixture,
):
    with caplog.at_level(logging.WARNING, logger="easymatch.config"):
        load(**{"model_config.dssm.logq_correction": False})
    assert "candidate_probability: has no effect" in caplog.text
