"""Configs validation accepts: warnings, an empty eval path, aliases."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_config_samples import DSSM_CONFIG, replace, write
from test_config_validate import Edit, sub

from easymatch.config import load_pipeline_config


@pytest.mark.parametrize(
    "edit, field",
    [
        (
            sub("    fg_mode: FG_DAG\n", "    fg_encoded: false\n"),
            "data_config.fg_encoded: deprecated and ignored, fg_mode is "
            "FG_NONE; TorchEasyRec uses FG_DAG",
        ),
        (
            sub(
                "    losses {",
                "    variational_dropout {\n"
                "        embedding_wise_variational_dropout: true\n    }\n"
                "    losses {",
            ),
            "model_config.variational_dropout."
            "embedding_wise_variational_dropout: has no effect",
        ),
        (
            sub("num_sample: 128", "num_sample: 128\nnum_eval_sample: 0"),
            "data_config.negative_sampler.num_eval_sample: 0 means num_sample",
        ),
    ],
)
def test_warnings(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    edit: Edit,
    field: str,
) -> None:
    path = write(tmp_path, edit(DSSM_CONFIG))
    with caplog.at_level(logging.WARNING, logger="easymatch.config"):
        load_pipeline_config(str(path))
    assert any(
        r.getMessage().startswith(f"{path}:") and field in r.getMessage()
        for r in caplog.records
    ), caplog.text


def test_optional_eval_path_and_alias(tmp_path: Path) -> None:
    text = replace(DSSM_CONFIG, '"data/eval/*.parquet"', '""')
    text = replace(
        text,
        'exporter_type: "latest"',
        'exporter_type: "best"\n    best_exporter_metric: "recall@5"\n'
        "    metric_larger_is_better: false\n    metric_bigger: true",
    )
    config = load_pipeline_config(str(write(tmp_path, text)))
    assert config.eval_input_path == ""
    assert config.export_config.metric_larger_is_better
