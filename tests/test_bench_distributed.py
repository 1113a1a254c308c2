"""The `distributed` bench part on tiny data: every layout trains as real
processes and reports its fields (values unchecked)."""

from __future__ import annotations

import pytest
from conftest import DEMO_CONFIG, demo_edits

from easymatch.bench import distributed
from easymatch.config import load_pipeline_config


@pytest.mark.slow
def test_each_layout_reports_throughput_and_rss_per_task(taobao_data, tmp_path):
    config = load_pipeline_config(
        DEMO_CONFIG, demo_edits(taobao_data, tmp_path / "unused")
    )
    config = distributed.user_table_config(config, user_rows=5000, steps=4)
    users = [
        f.id_feature.num_buckets
        for f in config.feature_configs
        if f.WhichOneof("feature") == "id_feature"
        and f.id_feature.feature_name == "user_id"
    ]
    assert users == [5000]
    result = distributed.distributed(config, distributed.LAYOUTS, 600)
    assert set(result) == {"1_process", "2_mwms_workers", "2_workers_2_ps"}
    one, two = result["1_process"], result["2_mwms_workers"]
    ps = result["2_workers_2_ps"]
    assert set(one["peak_rss_mb"]) == {"process_0"}
    assert set(two["peak_rss_mb"]) == {"worker_0", "worker_1"}
    assert set(ps["peak_rss_mb"]) == {
        "chief_0",
        "worker_0",
        "worker_1",
        "ps_0",
        "ps_1",
    }
    # A PS step is one worker's batch.
    assert (one["global_batch"], two["global_batch"]) == (32, 64)
    assert ps["global_batch"] == 32
    for figures in (one, two, ps):
        assert figures["examples_per_sec"] > 0
        assert all(mb > 100 for mb in figures["peak_rss_mb"].values())
    # Nothing of the runs is left behind (their work dirs are temporary).
    assert not (tmp_path / "unused").exists()
