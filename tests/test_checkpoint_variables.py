"""Checkpoint keys follow the layer structure, read from attributes."""

from __future__ import annotations

import keras

from easymatch.checkpoint import sublayers, variable_tree


class Block(keras.layers.Layer):
    """Sub-layers in an attribute, a list and a dict; one shared twice."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.first = keras.layers.Dense(2)
        self.stack = [keras.layers.Dense(3), keras.layers.Dense(4)]
        self.by_name = {"norm": keras.layers.LayerNormalization()}
        self.again = self.first
        self.scale = self.add_weight(shape=(1,), name="scale")

    def call(self, inputs):
        x = self.first(inputs)
        for layer in self.stack:
            x = layer(x)
        return self.by_name["norm"](x) * self.scale


def test_sublayers_in_assignment_order_once_each():
    block = Block()
    assert [type(layer).__name__ for layer in sublayers(block)] == [
        "Dense",
        "Dense",
        "Dense",
        "LayerNormalization",
    ]
    assert sublayers(block)[0] is block.first


def test_variable_tree_keys_by_position_and_class():
    block = Block()
    block(keras.ops.ones((1, 5)))
    tree = variable_tree(block)
    assert list(tree) == [
        "v_scale",
        "0_Dense",
        "1_Dense",
        "2_Dense",
        "3_LayerNormalization",
    ]
    assert sorted(tree["1_Dense"]) == ["v_bias", "v_kernel"]
    assert tuple(tree["1_Dense"]["v_kernel"].shape) == (2, 3)
    assert sorted(tree["3_LayerNormalization"]) == ["v_beta", "v_gamma"]


class Inline(keras.layers.Layer):
    """Adds no checkpoint level: a weight, a sub-layer, a random stream."""

    checkpoint_inline = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count = self.add_weight(shape=(), name="count", trainable=False)
        self.dense = keras.layers.Dense(2)
        self.seed = keras.random.SeedGenerator(5)


class Outer(keras.layers.Layer):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.inline = Inline()
        self.norm = keras.layers.LayerNormalization()
        self.norm.build((None, 2))
        self.inline.dense.build((None, 3))


def test_an_inline_layer_lends_its_members_to_its_parent():
    outer = Outer()
    tree = variable_tree(outer)
    assert list(tree) == [
        "v_count",
        "seed_0",
        "0_Dense",
        "1_LayerNormalization",
    ]
    assert tree["v_count"] is outer.inline.count.value
    assert tree["seed_0"] is outer.inline.seed.state.value
    assert sorted(tree["0_Dense"]) == ["v_bias", "v_kernel"]
