"""Mutated sample configs and mutated data end in a one-line easymatch
error or train; never in a traceback (issue #14, item 8).

A bounded number of hypothesis examples here; `tools/fuzz.py --examples N`
runs more (README, Reliability).
"""

from __future__ import annotations

import pytest
from fuzz import fuzz, run_case, workspace

EXAMPLES = 4


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return workspace(str(tmp_path_factory.mktemp("fuzz")))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["config", "data"])
def test_fuzzed_cases_end_in_one_line_or_train(space, kind):
    report = fuzz(space, kind, EXAMPLES, seed=1)
    assert report["tracebacks"] == []
    assert sum(report["counts"].values()) == EXAMPLES


def test_an_out_of_range_number_is_one_config_error_line(space, tmp_path):
    text = space.configs["dssm_demo"]
    assert "batch_size: 16\n" in text
    mutated = text.replace("batch_size: 16\n", "batch_size: -1\n")
    outcome, message = run_case(mutated, str(tmp_path / "m"))
    assert outcome == "ConfigError", message
    assert "batch_size" in message
