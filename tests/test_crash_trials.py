"""SIGKILL at five points (after a step, during a checkpoint save, during
an export), rerun: training finishes, resumes right after the latest
checkpoint each time and ends bitwise equal to an uninterrupted run
(issue #14, item 2), without PYTHON_RANDOM_SEED: the reruns continue the
uninterrupted run's drawn seed from their record of it."""

from __future__ import annotations

import pytest
from crash_trials import run_trials


@pytest.mark.slow
def test_killed_runs_finish_where_an_uninterrupted_run_ends(tmp_path):
    summary = run_trials(trials=1, kills=5, seed=1, work=str(tmp_path))
    assert summary["run_seed_source"] == "drawn"
    assert summary["kills"] >= 5, summary
    assert summary["distinct_kill_points"] >= 5
    assert summary["kills_by_kind"]["save"] >= 1
    assert summary["kills_by_kind"]["export"] >= 1
    assert summary["finished"] == 1
    assert summary["steps_retrained_before_a_checkpoint"] == 0
    assert summary["wrong_starts"] == 0
    assert summary["bitwise_equal"] == 1, summary["max_abs_weight_diff"]
