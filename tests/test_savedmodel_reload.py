"""Every layer and both models as a TF SavedModel: the graphs that
tf.saved_model.load restores (no Keras objects) give identical outputs."""

from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from test_layers_serialization import CASES
from test_models_dssm_v2 import make, shared_batch

from easymatch.models.dssm import DSSM
from easymatch.models.dssm_v2 import DSSMV2


def _spec(value: Any) -> tf.TensorSpec:
    """Any batch size and id or sequence length; value widths fixed."""
    value = tf.convert_to_tensor(value)
    shape = value.shape.as_list()
    shape[0] = None
    if len(shape) == 3 or (len(shape) == 2 and value.dtype.is_integer):
        shape[1] = None
    return tf.TensorSpec(shape, value.dtype)


def _save_and_load(fn, example: Any, path) -> tuple[Any, Any]:
    """Saves `fn` for inputs shaped like `example`; (function, loaded)."""
    traced = tf.function(
        fn, input_signature=[tf.nest.map_structure(_spec, example)]
    )
    concrete = traced.get_concrete_function()
    module = tf.Module()
    module.serve = traced
    # What the tower exporter does: track exactly the variables read.
    module.read_variables = list(concrete.variables)
    tf.saved_model.save(module, str(path))
    return traced, tf.saved_model.load(str(path))


def _assert_same(expected: Any, actual: Any, rtol: float = 1e-6) -> None:
    tf.nest.assert_same_structure(expected, actual)
    for x, y in zip(
        tf.nest.flatten(expected), tf.nest.flatten(actual), strict=True
    ):
        np.testing.assert_allclose(
            np.asarray(x), np.asarray(y), rtol=rtol, atol=rtol * 1e-3
        )


@pytest.mark.parametrize("case", CASES)
def test_layer_outputs_survive_saved_model_reload(case, tmp_path):
    layer, _, values = CASES[case]()
    if isinstance(values, list):

        def call(inputs):
            return layer(*inputs, training=False)
    else:

        def call(inputs):
            return layer(inputs, training=False)

    eager = call(values)
    traced, loaded = _save_and_load(call, values, tmp_path / case)
    # The loaded graph may fuse bfloat16 ops differently: a rounding or two.
    rtol = 0.02 if "bf16" in case else 1e-6
    _assert_same(eager, traced(values), rtol)
    _assert_same(eager, loaded.serve(values), rtol)


@pytest.mark.parametrize("model_type", [DSSM, DSSMV2])
def test_model_outputs_survive_saved_model_reload(model_type, tmp_path):
    model = make(
        model_type, variational_dropout={"regularization_lambda": 0.01}
    )
    batch = shared_batch()

    def call(features):
        outputs = model(features, training=False)
        return {k: outputs[k] for k in ("similarity", "user_tower_emb")}

    eager = call(batch)
    _, loaded = _save_and_load(call, batch, tmp_path / "model")
    _assert_same(eager, loaded.serve(batch))


@pytest.mark.parametrize("side", ["user", "item"])
def test_v2_tower_saved_model_reads_only_its_tables(side, tmp_path):
    model = make()
    batch = shared_batch()
    user_keys = ("cat_u", "int_u", "seq__cat_i")
    keys = user_keys if side == "user" else ("cat_i", "int_i")
    features = {k: batch[k] for k in keys}
    embed = model.embed_users if side == "user" else model.embed_items

    def call(inputs):
        return embed(inputs, training=False)[0]

    traced, loaded = _save_and_load(call, features, tmp_path / side)
    tables = {
        v.name.split(":")[0].rsplit("/", 1)[-1]
        for v in traced.get_concrete_function().variables
        if v.name.startswith("embedding_tables/")
    }
    # The item table is shared: the user's history reads it too.
    assert tables == (
        {"cat_u_emb", "cat_i_emb"} if side == "user" else {"cat_i_emb"}
    )
    _assert_same(call(features), loaded.serve(features))
