"""train_config.grad_clipping reaches the train step; unsupported forms fail."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import DEMO_CONFIG
from test_models_dssm import make_dssm

from easymatch.config import load_pipeline_config
from easymatch.errors import ConfigError
from easymatch.models.builder import model_kwargs
from easymatch.run_context import RunContext


def test_norm_clipping_scales_all_gradients_by_one_global_norm():
    model = make_dssm(
        gradient_clipping={"clipping_type": "norm", "max_gradient": 1.0}
    )
    dense = tf.constant([3.0, 0.0])
    sparse = tf.IndexedSlices(
        tf.constant([[0.0, 4.0]]), tf.constant([2]), tf.constant([5, 2])
    )
    clipped_dense, clipped_sparse = model.clip_gradients([dense, sparse])
    # Global norm sqrt(3² + 4²) = 5 → everything scaled by 1/5.
    np.testing.assert_allclose(clipped_dense.numpy(), [0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        clipped_sparse.values.numpy(), [[0.0, 0.8]], rtol=1e-6
    )


def test_value_clipping_keeps_sparse_gradients_sparse():
    model = make_dssm(
        gradient_clipping={"clipping_type": "value", "max_gradient": 0.5}
    )
    sparse = tf.IndexedSlices(
        tf.constant([[2.0, -0.1]]), tf.constant([1]), tf.constant([4, 2])
    )
    (clipped,) = model.clip_gradients([sparse])
    assert isinstance(clipped, tf.IndexedSlices)
    np.testing.assert_allclose(clipped.values.numpy(), [[0.5, -0.1]])


def test_config_clipping_is_passed_to_the_model():
    config = load_pipeline_config(
        str(DEMO_CONFIG),
        json.dumps(
            {
                "train_config.grad_clipping.clipping_type": "norm",
                "train_config.grad_clipping.max_gradient": 2.5,
            }
        ),
    )
    kwargs = model_kwargs(RunContext(config).specs.model)
    assert kwargs["gradient_clipping"] == {
        "clipping_type": "norm",
        "max_gradient": 2.5,
    }


@pytest.mark.parametrize(
    "edit, field",
    [
        (
            {
                "train_config.grad_clipping.clipping_type": "norm",
                "train_config.grad_clipping.norm_type": 1.0,
            },
            "train_config.grad_clipping.norm_type",
        ),
        (
            {"train_config.gradient_accumulation_steps": 4},
            "train_config.gradient_accumulation_steps",
        ),
    ],
)
def test_unsupported_forms_are_rejected(edit, field):
    with pytest.raises(ConfigError, match=field):
        load_pipeline_config(str(DEMO_CONFIG), json.dumps(edit))
