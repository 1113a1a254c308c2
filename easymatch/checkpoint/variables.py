"""A model's variables keyed by its layer structure, for tf.train.Checkpoint.

tf.train.Checkpoint does not see variables or layers that Keras 3 keeps
in lists and dicts, and Keras' own variable paths carry per-process name
counters ("dense_3"). Sub-layer position and class are stable for a given
config, so a checkpoint keyed by them restores in any process.

A layer whose class sets `checkpoint_inline = True` adds no level: its
sub-layers, random streams and variables are keyed as its parent's, in
its place. The Retrieval task is one, so the frequency estimator it owns
keeps the key it had as the model's own first sub-layer, and model_dirs
written before the task layer existed resume and export unchanged.
"""

from __future__ import annotations

import functools

import keras


@functools.cache
def _base_attributes() -> frozenset[str]:
    """Attributes every Keras layer or model has: Keras' own bookkeeping
    (its tracking lists hold the sub-layers a second time)."""
    return frozenset(vars(keras.layers.Layer())) | frozenset(
        vars(keras.Model())
    )


def _layers_in(value: object) -> list[keras.layers.Layer]:
    if isinstance(value, keras.layers.Layer):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        return [layer for item in value for layer in _layers_in(item)]
    return []


def _inline(layer: keras.layers.Layer) -> bool:
    return bool(getattr(layer, "checkpoint_inline", False))


def _attribute_layers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers held in the layer's attributes (lists and dicts
    included), in assignment order, once each."""
    base = _base_attributes()
    found: dict[int, keras.layers.Layer] = {}
    for name, value in vars(layer).items():
        if name in base:
            continue
        for child in _layers_in(value):
            found.setdefault(id(child), child)
    return list(found.values())


def sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layer's direct sub-layers, in the order they were assigned,
    an inline sub-layer replaced by its own.

    Read from its attributes rather than from Keras' private tracking
    list, which holds the same layers in the same order.
    """
    found: dict[int, keras.layers.Layer] = {}
    for child in _attribute_layers(layer):
        for member in sublayers(child) if _inline(child) else [child]:
            found.setdefault(id(member), member)
    return list(found.values())


def seed_generators(layer: keras.layers.Layer) -> list:
    """The layer's own random streams (e.g. dropout's), in assignment
    order, then its inline sub-layers'."""
    base = _base_attributes()
    found: dict[int, keras.random.SeedGenerator] = {}
    for name, value in vars(layer).items():
        if name in base:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, keras.random.SeedGenerator):
                found.setdefault(id(item), item)
    inline = [c for c in _attribute_layers(layer) if _inline(c)]
    for child in inline:
        for generator in seed_generators(child):
            found.setdefault(id(generator), generator)
    return list(found.values())


def variable_tree(layer: keras.layers.Layer) -> dict:
    """The layer's variables as nested dicts keyed by structure: its own
    as `v_<name>`, its random streams' states as `seed_<index>`, each
    sub-layer's under `<position>_<class name>`."""
    children = sublayers(layer)
    nested = {id(w) for child in children for w in child.weights}
    tree: dict = {
        f"v_{weight.name}": weight.value
        for weight in layer.weights
        if id(weight) not in nested
    }
    # Tables sharded over ps tasks (not Keras weights) under the key their
    # Keras weight has in one process: the checkpoints are interchangeable.
    for name, table in getattr(layer, "sharded_tables", {}).items():
        tree[f"v_{name}"] = table
    # Dropout's random streams: a resumed run draws the masks an
    # uninterrupted one would.
    for index, generator in enumerate(seed_generators(layer)):
        tree[f"seed_{index}"] = generator.state.value
    for index, child in enumerate(children):
        tree[f"{index}_{type(child).__name__}"] = variable_tree(child)
    return tree
