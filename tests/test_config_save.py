"""save_pipeline_config: text format, atomic, loads back equal."""

from __future__ import annotations

import os
from pathlib import Path

from test_config_samples import DSSM_CONFIG

from easymatch.config import (
    edit_config,
    load_pipeline_config,
    load_pipeline_config_from_text,
    save_pipeline_config,
)


def test_round_trip(tmp_path: Path) -> None:
    config = load_pipeline_config_from_text(DSSM_CONFIG)
    edit_config(config, '{"model_config.dssm.temperature": 0.05}')
    path = tmp_path / "model_dir" / "pipeline.config"
    save_pipeline_config(config, str(path))
    loaded = load_pipeline_config(str(path))
    assert loaded == config
    # Non-ASCII delimiters stay readable escapes, not raw control bytes.
    assert 'attr_delimiter: "\\002"' in path.read_text(encoding="utf-8")


def test_overwrite_leaves_no_temporary_files(tmp_path: Path) -> None:
    config = load_pipeline_config_from_text(DSSM_CONFIG)
    path = tmp_path / "pipeline.config"
    path.write_text("old", encoding="utf-8")
    save_pipeline_config(config, str(path))
    save_pipeline_config(config, str(path))
    assert os.listdir(tmp_path) == ["pipeline.config"]
    assert load_pipeline_config(str(path)) == config
