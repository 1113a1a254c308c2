"""tools/bench.py --quick runs and reports every field (values unchecked)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT


# Several minutes: it trains, exports, builds indexes and load-tests the
# server; CI still runs it.
@pytest.mark.slow
def test_quick_bench_prints_all_fields(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "bench.py"),
            "--quick",
            "--data_dir",
            str(tmp_path / "data"),
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed == json.loads(output.read_text())
    for key in (
        "pipeline",
        "sampler_pipeline",
        "train",
        "train_step_ms_by_steps_per_execution",
        "train_bf16",
        "pipeline_to_train_ratio",
        "table_step_ms",
        "export_seconds",
        "user_tower_latency_ms",
        "scann",
        "retrieval_model",
        "serve",
        "peak_rss_mb",
    ):
        assert key in printed
    assert set(printed["user_tower_latency_ms"]) == {"p50", "p99"}
    assert set(printed["scann"]) == {"clustered_50000"}
    for figures in printed["scann"].values():
        assert "held_out_recall@100_vs_exact" in figures
        assert "brute_force_qps" in figures["tuning"]
    assert set(printed["retrieval_model"]["20000"]) == {
        "p50_ms",
        "p99_ms",
        "single_request_qps",
        "batch_256_qps",
    }
    served = printed["serve"]["20000"]
    assert served["server_exit_status"] == 0
    assert set(served["served_concurrency_8"]) == {"qps", "p50_ms", "p99_ms"}
    assert printed["train"]["1024"]["examples_per_sec"] > 0
    assert set(printed["table_step_ms"]) == {"10000", "1000000"}
