"""The inputs of an exported tower's two signatures.

`serving_default` takes one 1-D tensor per input column; the `tf_example`
signature takes serialized tf.Example protos (an Estimator-style parsing
receiver) and parses them into the same columns inside the graph.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import tensorflow as tf

SERVING_SIGNATURE = "serving_default"
EXAMPLE_SIGNATURE = "tf_example"
EXAMPLES_INPUT = "examples"


def output_name(side: str) -> str:
    return f"{side}_tower_emb"


def column_dtypes(
    kinds: dict[str, str], arrow_types: dict[str, pa.DataType]
) -> dict[str, tf.DType]:
    """Signature dtype of each input column, in `kinds` order.

    `kinds` is FeatureSet.input_columns() ("string" | "float"),
    `arrow_types` the training data's column types (may miss columns).
    Integer columns are int64: the graph formats them as the decimal text
    the reader produces. Numeric columns read as numbers are float32.
    Everything else is a string, including a float column that an id
    feature reads as text (Arrow's float formatting has no TF op) and
    booleans; without a known type the column kind decides.
    """
    dtypes = {}
    for name, kind in kinds.items():
        arrow_type = arrow_types.get(name)
        if arrow_type is not None and pa.types.is_integer(arrow_type):
            dtypes[name] = tf.int64
        elif kind == "float" and (
            arrow_type is None
            or pa.types.is_floating(arrow_type)
            or pa.types.is_decimal(arrow_type)
        ):
            dtypes[name] = tf.float32
        else:
            dtypes[name] = tf.string
    return dtypes


def serving_specs(dtypes: dict[str, tf.DType]) -> dict[str, tf.TensorSpec]:
    return {
        name: tf.TensorSpec([None], dtype, name=name)
        for name, dtype in dtypes.items()
    }


def parse_examples(
    examples: tf.Tensor, dtypes: dict[str, tf.DType]
) -> dict[str, tf.Tensor]:
    """Serialized tf.Example [B] → the columns, a missing value as a null.

    Strings default to "" and floats to NaN, the reader's nulls. An int64
    tensor has no null, so integer features are parsed as variable-length
    and turned into text, "" when missing: the graph formats integers as
    text anyway. A feature holds at most one value.
    """
    spec: dict[str, tf.io.VarLenFeature | tf.io.FixedLenFeature] = {}
    for name, dtype in dtypes.items():
        if dtype == tf.int64:
            spec[name] = tf.io.VarLenFeature(tf.int64)
        elif dtype == tf.float32:
            spec[name] = tf.io.FixedLenFeature([], tf.float32, float("nan"))
        else:
            spec[name] = tf.io.FixedLenFeature([], tf.string, "")
    parsed = tf.io.parse_example(examples, spec)
    rows = tf.shape(examples, out_type=tf.int64)[0]
    columns = {}
    for name, dtype in dtypes.items():
        value = parsed[name]
        if dtype == tf.int64:
            text = tf.SparseTensor(
                value.indices,
                tf.strings.as_string(value.values),
                tf.stack([rows, 1]),
            )
            value = tf.sparse.to_dense(text, default_value="")[:, 0]
        columns[name] = value
    return columns


def column_signatures(
    run: Callable[[dict[str, tf.Tensor]], dict], dtypes: dict[str, tf.DType]
) -> dict[str, tf.types.experimental.ConcreteFunction]:
    """Both signatures of `run` (input columns → outputs): raw columns
    and serialized tf.Example protos."""

    def serve(**columns: tf.Tensor) -> dict:
        return run(columns)

    def serve_examples(examples: tf.Tensor) -> dict:
        return run(parse_examples(examples, dtypes))

    return {
        SERVING_SIGNATURE: tf.function(serve).get_concrete_function(
            **serving_specs(dtypes)
        ),
        EXAMPLE_SIGNATURE: tf.function(serve_examples).get_concrete_function(
            tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)
        ),
    }


def read_variables(signatures: dict) -> list[tf.Variable]:
    """The variables the signatures read, each once: what a SavedModel
    must track to hold no more than they need."""
    return list(
        {
            id(variable): variable
            for function in signatures.values()
            for variable in function.variables
        }.values()
    )
