"""tools/gen_planted_data.py and tools/bench_logq.py end to end, tiny."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT


def run_tool(name: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / name), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_generate_then_compare_options(tmp_path):
    summary = run_tool(
        "gen_planted_data.py",
        "--output_dir",
        str(tmp_path / "seed0"),
        "--num_users",
        "200",
        "--num_items",
        "100",
        "--rows_per_user",
        "10",
    )
    assert summary["train_rows"] == 2000 and summary["test_rows"] == 200
    output = tmp_path / "bench.json"
    printed = run_tool(
        "bench_logq.py",
        "--data_dir",
        str(tmp_path),
        "--options",
        "none,train_counts",
        "--num_epochs",
        "1",
        "--output",
        str(output),
    )
    assert printed == json.loads(output.read_text())
    seed = printed["seeds"]["0"]
    assert seed["oracle_recall@10"] == pytest.approx(
        summary["oracle_recall@10"]
    )
    for name in ("none", "train_counts"):
        for k in (10, 50, 100):
            # The oracle is Bayes-optimal: no ranking beats it.
            ratio = seed[name][f"recall@{k}_over_oracle"]
            assert 0 < ratio <= 1 + 1e-9, (name, k)
            assert printed["mean"][name][f"recall@{k}_over_oracle"] == ratio
    # 100 items: every item is in the top 100, for the oracle and the model.
    assert seed["none"]["recall@100_over_oracle"] == pytest.approx(1.0)
