"""Specs derived once from the pipeline proto, and their configs.

Every sample config and TorchEasyRec's nine DSSM configs (from
ROOT.parent/"shared", through tools/create_mock_data's helper, which
also turns the ODPS ones into Parquet) derive consistent specs; the demo
config's are checked by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DEMO_CONFIG, ROOT
from test_layers_embedding_group import TAOBAO_USER

from easymatch.config import load_pipeline_config
from easymatch.data.mock_data import create_mock_data
from easymatch.layers import EmbeddingGroup
from easymatch.models.builder import build_model
from easymatch.models.dssm import DSSM
from easymatch.run_context import RunContext
from easymatch.specs import (
    FeatureSpec,
    GroupSpec,
    MlpSpec,
    SequenceEncoderSpec,
    SequenceGroupSpec,
    TableSpec,
    TowerSpec,
)
from easymatch.specs.derive import used_feature_names

SAMPLES = sorted((ROOT / "samples").glob("*.config"))
TZREC = ROOT.parent / "shared" / "tzrec_configs"
TZREC_NAMES = sorted(
    [
        "benchmark_configs_taobao_dssm_taobao",
        "examples_dssm_taobao",
        "examples_dssm_v2_taobao",
        "tests_configs_dssm_mock",
        "tests_configs_dssm_fg_mock",
        "tests_configs_dssm_fg_hard_negative_mock",
        "tests_configs_dssm_v2_fg_mock",
        "tests_configs_dssm_v2_mlpemb_fg_mock",
        "tests_configs_dssm_variational_dropout_mock",
    ]
)
USER = TAOBAO_USER
ITEM = ("adgroup_id", "cate_id", "campaign_id", "customer", "brand", "price")


def tzrec_config(name: str, directory: Path):
    """TorchEasyRec's config with mock data (and tokenizer files) beside
    it, as the end-to-end test runs it."""
    path = TZREC / f"{name}.config"
    assert path.exists(), f"{path} is missing"
    return load_pipeline_config(
        create_mock_data(str(path), str(directory), num_rows=8)
    )


def round_trips(spec) -> bool:
    config = json.loads(json.dumps(spec.get_config()))
    return type(spec).from_config(config) == spec


def test_demo_specs_by_hand():
    run = RunContext(load_pipeline_config(str(DEMO_CONFIG)))
    model = run.specs.model
    assert model.kind == "dssm"
    sequence = ("click_50_seq__adgroup_id", "click_50_seq__cate_id")
    assert model.groups == (
        GroupSpec(
            "user",
            USER,
            (SequenceGroupSpec("click_50_seq", sequence),),
            (SequenceEncoderSpec("click_50_seq", "mean", 0),),
        ),
        GroupSpec("item", ITEM),
    )
    assert model.user_tower == TowerSpec("user", MlpSpec((128, 64)))
    assert model.item_tower == TowerSpec("item", MlpSpec((128, 64)))
    assert model.output_dim == 32
    assert model.variational_dropout is None
    assert model.gradient_clipping == ("none", 1.0)
    features = {spec.name: spec for spec in model.features}
    assert set(features) == set(USER + ITEM + sequence)
    assert features["user_id"] == FeatureSpec.sparse(
        "user_id", TableSpec("user_id_emb", 2000, 16)
    )
    assert features["pid"].table.num_embeddings == 20  # hash_bucket_size
    # Ten boundaries make eleven buckets.
    assert features["price"].table == TableSpec("price_emb", 11, 16)
    retrieval = run.specs.retrieval
    assert retrieval.similarity == "COSINE"
    assert retrieval.temperature == pytest.approx(0.05)
    assert retrieval.in_batch_negative and not retrieval.mixed_negatives
    assert retrieval.recall_top_ks == (1, 5, 10)
    # No option compares item ids, so the batch carries none.
    assert retrieval.item_id_column is None
    assert retrieval.counts_column is None
    data = run.specs.data
    assert (data.dataset_type, data.label_field) == ("parquet", "clk")
    assert (data.batch_size, data.shuffle) == (256, True)
    assert data.sample_weight_field is None
    assert not data.has_sampler and data.id_columns == ()


def test_mixed_negatives_take_the_item_id_column_from_the_sampler():
    config = load_pipeline_config(
        str(ROOT / "samples" / "dssm_mixed_negatives.config")
    )
    specs = RunContext(config).specs
    retrieval = specs.retrieval
    assert retrieval.mixed_negatives and retrieval.logq_correction
    assert retrieval.remove_accidental_hits
    assert retrieval.item_id_column == "adgroup_id"
    # logQ of the in-batch block reads exact training counts by default.
    assert retrieval.candidate_probability.source == "train_counts"
    assert retrieval.counts_column == "adgroup_id"
    assert specs.data.sampler_item_id_field == "adgroup_id"
    assert specs.data.id_columns == ("adgroup_id",)


def check_specs(run: RunContext) -> None:
    """What holds for every config's specs."""
    model = run.specs.model
    assert model.kind == run.config.model_config.WhichOneof("model")
    names = [spec.name for spec in model.features]
    assert set(names) == used_feature_names(model.groups)
    assert names == run.feature_set.names
    group_names = {group.name for group in model.groups}
    assert {model.user_tower.input, model.item_tower.input} <= group_names
    for spec in (*model.features, *model.groups, model.user_tower):
        assert round_trips(spec), spec
    assert round_trips(model.item_tower)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_every_sample_config_derives_consistent_specs(path: Path):
    check_specs(RunContext(load_pipeline_config(str(path))))


@pytest.mark.parametrize("name", TZREC_NAMES)
def test_every_torcheasyrec_config_derives_consistent_specs(name, tmp_path):
    run = RunContext(tzrec_config(name, tmp_path))
    check_specs(run)
    assert run.specs.model.kind == ("dssm_v2" if "v2" in name else "dssm")


def test_embedding_group_config_rebuilds_the_same_specs_and_tables():
    model = RunContext(load_pipeline_config(str(DEMO_CONFIG))).specs.model
    group = EmbeddingGroup(model.features, model.groups)
    config = json.loads(json.dumps(group.get_config()))
    rebuilt = EmbeddingGroup.from_config(config)
    assert rebuilt.features == group.features
    assert rebuilt.groups == group.groups
    shapes = [(v.name, tuple(v.shape)) for v in group.embedding_variables]
    assert shapes == [
        (v.name, tuple(v.shape)) for v in rebuilt.embedding_variables
    ]


def test_model_config_rebuilds_the_model_from_specs():
    run = RunContext(load_pipeline_config(str(DEMO_CONFIG)))
    model = build_model(run.specs.model)
    config = json.loads(json.dumps(model.get_config()))
    rebuilt = DSSM.from_config(config)
    assert rebuilt.feature_specs == run.specs.model.features
    assert rebuilt.group_specs == run.specs.model.groups
    assert rebuilt.user_tower_spec == run.specs.model.user_tower
    assert [tuple(w.shape) for w in rebuilt.weights] == [
        tuple(w.shape) for w in model.weights
    ]
