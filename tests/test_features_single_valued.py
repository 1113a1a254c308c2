"""Integer columns skip splitting: the ids must equal the split path's."""

import numpy as np
import pytest
import tensorflow as tf

from easymatch.features import IdFeature

TEXT = tf.constant(["12", "", "-3", "7", "0"])
BUCKETIZERS = [
    {"hash_bucket_size": 97},
    {"num_buckets": 20, "default_value": "5"},
    {"vocab_list": ["7", "12", "-3"]},
    {"vocab_list": ["7", "12"], "default_value": "12"},
    {"vocab_dict": {"7": 2, "12": 3}},
    {"hash_bucket_size": 97, "default_value": "1"},
]


def feature(**kwargs) -> IdFeature:
    return IdFeature("f", "c", 4, **kwargs)


def ids(feature: IdFeature, column: tf.Tensor, single: bool) -> np.ndarray:
    return feature.outputs({"c": column}, single_valued=single)["f"].numpy()


@pytest.mark.parametrize("kwargs", BUCKETIZERS)
def test_single_valued_text_equals_split(kwargs: dict) -> None:
    if "num_buckets" in kwargs:
        column = tf.constant(["12", "", "3", "7", "0"])
    else:
        column = TEXT
    split = ids(feature(**kwargs), column, single=False)
    assert split.shape == (5, 1)
    np.testing.assert_array_equal(
        ids(feature(**kwargs), column, single=True), split
    )


def test_missing_value_without_default_is_padding() -> None:
    got = ids(feature(hash_bucket_size=97), TEXT, single=True)
    assert got[1, 0] == -1 and (np.delete(got, 1) >= 0).all()


def test_int64_input_takes_the_path_of_its_text() -> None:
    numbers = tf.constant([12, -3, 7], tf.int64)
    text = tf.constant(["12", "-3", "7"])
    hashed = feature(hash_bucket_size=97)
    np.testing.assert_array_equal(
        ids(hashed, numbers, single=False), ids(hashed, text, single=False)
    )
    expected = tf.strings.to_hash_bucket_fast(text, 97).numpy()[:, None]
    np.testing.assert_array_equal(ids(hashed, numbers, False), expected)


def test_separator_sharing_a_digit_or_sign_still_splits() -> None:
    # "-3" split at "-" is "3": the fast path would keep "-3".
    dashed = feature(hash_bucket_size=97, separator="-")
    got = ids(dashed, tf.constant(["-3"]), single=True)
    assert got[0, 0] == tf.strings.to_hash_bucket_fast("3", 97).numpy()


def test_weighted_feature_ignores_single_valued() -> None:
    weighted = feature(hash_bucket_size=97, weighted=True)
    column = {"c": tf.constant(["4:0.5"])}
    out = weighted.outputs(column, single_valued=True)
    assert out["f__weight"].numpy()[0, 0] == pytest.approx(0.5)
    four = tf.strings.to_hash_bucket_fast("4", 97).numpy()
    assert out["f"].numpy()[0, 0] == four


@pytest.mark.parametrize(
    "kwargs", [{"num_buckets": 20}, {"num_buckets": 20, "fg_encoded": True}]
)
def test_int64_ids_equal_their_parsed_text(kwargs: dict) -> None:
    numbers = tf.constant([12, 3, 0, 19], tf.int64)
    text = tf.constant(["12", "3", "0", "19"])
    parsed = feature(**kwargs)
    np.testing.assert_array_equal(
        ids(parsed, numbers, single=False), ids(parsed, text, single=False)
    )
    np.testing.assert_array_equal(
        ids(parsed, numbers, single=False), [[12], [3], [0], [19]]
    )


def test_int64_id_out_of_range_names_the_feature() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError, match='feature "f"'):
        ids(feature(num_buckets=20), tf.constant([20], tf.int64), False)
