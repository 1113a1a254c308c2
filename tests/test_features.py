"""Feature transforms against SPEC §4 T6/T7 and hand-computed ids."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from easymatch.features import (
    FeatureSet,
    IdFeature,
    RawFeature,
    SequenceIdFeature,
)

T6_INPUT = tf.constant(["abc\x1defg", "", "hij"])


def flat(ids: tf.Tensor) -> tuple[list[int], list[int]]:
    """Padded [B, L] ids → TorchEasyRec's (values, lengths) form."""
    ids = ids.numpy()
    values = [int(v) for row in ids for v in row if v >= 0]
    lengths = [int((row >= 0).sum()) for row in ids]
    return values, lengths


def id_feature(**kwargs) -> IdFeature:
    return IdFeature("f", "c", 4, **kwargs)


@pytest.mark.parametrize(
    "default_value, vocab, bucketize, ids, lengths, size",
    [
        ("", ["abc", "efg"], None, [2, 3, 1], [2, 0, 1], 4),
        ("xyz", ["abc", "efg"], None, [2, 3, 0, 1], [2, 1, 1], 4),
        ("abc", ["abc", "efg"], None, [2, 3, 2, 1], [2, 1, 1], 4),
        ("", ["xyz", "abc", "efg"], 0, [1, 2, 0], [2, 0, 1], 3),
        ("xyz", ["xyz", "abc", "efg"], 0, [1, 2, 0, 0], [2, 1, 1], 3),
    ],
)
def test_vocab_list_matches_spec_t6(
    default_value, vocab, bucketize, ids, lengths, size
):
    feature = id_feature(
        vocab_list=vocab,
        default_value=default_value,
        default_bucketize_value=bucketize,
    )
    assert flat(feature.transform({"c": T6_INPUT})) == (ids, lengths)
    assert feature.num_embeddings == size


@pytest.mark.parametrize(
    "vocab, default_value, bucketize, ids, lengths",
    [
        ({"abc": 2, "efg": 2}, "", None, [2, 2, 1], [2, 0, 1]),
        ({"abc": 2, "efg": 2}, "xyz", None, [2, 2, 0, 1], [2, 1, 1]),
        ({"abc": 2, "efg": 2}, "abc", None, [0, 2, 0, 1], [2, 1, 1]),
        ({"abc": 1, "efg": 1}, "", 0, [1, 1, 0], [2, 0, 1]),
    ],
)
def test_vocab_dict_matches_spec_t6(
    vocab, default_value, bucketize, ids, lengths
):
    feature = id_feature(
        vocab_dict=vocab,
        default_value=default_value,
        default_bucketize_value=bucketize,
    )
    assert flat(feature.transform({"c": T6_INPUT})) == (ids, lengths)


def test_raw_boundaries_match_spec_t7():
    feature = RawFeature(
        "price",
        "p",
        boundaries=[0.05, 0.15, 0.25],
        embedding_dim=4,
        default_value="0.1",
    )
    column = tf.constant([0.2, 0.1, 0.3, np.nan], tf.float32)
    assert flat(feature.transform({"p": column})) == ([2, 1, 3, 1], [1] * 4)
    assert feature.num_embeddings == 4


def test_raw_boundaries_multi_value_match_spec_t7():
    feature = RawFeature(
        "price",
        "p",
        value_dim=2,
        boundaries=[0.05, 0.15, 0.25],
        embedding_dim=4,
        default_value="0.1\x1d0.4",
    )
    column = tf.constant(["0.2\x1d0.5", "", "0.3\x1d0.6"])
    assert flat(feature.transform({"p": column})) == (
        [2, 3, 1, 3, 3, 3],
        [2, 2, 2],
    )


def test_value_on_boundary_goes_to_upper_bucket():
    feature = RawFeature("x", "x", boundaries=[1.0, 2.0], embedding_dim=2)
    ids = feature.transform({"x": tf.constant([1.0, 2.0, 0.5])})
    assert ids.numpy().ravel().tolist() == [1, 2, 0]


def test_dense_raw_default_and_normalizers():
    column = {"x": tf.constant([100.0, np.nan, 0.0])}
    log10 = RawFeature(
        "x", "x", normalizer="method=log10,threshold=1e-10,default=-10"
    )
    np.testing.assert_allclose(
        log10.transform(column).numpy().ravel(), [2.0, -10.0, -10.0]
    )
    zscore = RawFeature(
        "x",
        "x",
        default_value="4",
        normalizer="method=zscore,mean=2,standard_deviation=4",
    )
    np.testing.assert_allclose(
        zscore.transform(column).numpy().ravel(), [24.5, 0.5, -0.5]
    )
    minmax = RawFeature("x", "x", normalizer="method=minmax,min=0,max=200")
    np.testing.assert_allclose(
        minmax.transform(column).numpy().ravel(), [0.5, 0.0, 0.0]
    )


def test_unknown_normalizer_is_rejected():
    with pytest.raises(ValueError, match="normalizer"):
        RawFeature("x", "x", normalizer="method=cube")


def test_hash_buckets_equal_keras_hashing_layer():
    feature = id_feature(hash_bucket_size=20)
    values = ["430548_1007", "430539_1007", "a", "b"]
    ids = feature.transform({"c": tf.constant(values)}).numpy().ravel()
    expected = keras.layers.Hashing(num_bins=20)(tf.constant(values))
    assert ids.tolist() == np.asarray(expected).ravel().tolist()
    # The fingerprint is fixed: the same value always gets the same bucket.
    assert ids.tolist() == [
        int(tf.strings.to_hash_bucket_fast(v, 20)) for v in values
    ]


def test_num_buckets_parses_ints_and_rejects_out_of_range():
    feature = id_feature(num_buckets=10)
    ids = feature.transform({"c": tf.constant(["3", "9\x1d0", ""])})
    assert flat(ids) == ([3, 9, 0], [1, 2, 0])
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        feature.transform({"c": tf.constant(["10"])})


def test_integer_columns_are_formatted_like_the_pipeline():
    feature = id_feature(hash_bucket_size=1000)
    as_int = feature.transform({"c": tf.constant([12, 7], tf.int64)})
    as_text = feature.transform({"c": tf.constant(["12", "7"])})
    assert as_int.numpy().tolist() == as_text.numpy().tolist()


def test_fg_encoded_ids_pass_through_with_null_default():
    feature = id_feature(
        num_buckets=10,
        fg_encoded=True,
        separator="\x03",
        fg_encoded_default_value="5",
    )
    ids = feature.transform({"c": tf.constant(["1\x032", ""])})
    assert flat(ids) == ([1, 2, 5], [2, 1])


def test_sequence_is_split_truncated_and_empty_has_length_zero():
    feature = SequenceIdFeature(
        "seq__item",
        "seq__item",
        4,
        sequence_length=3,
        sequence_delim="|",
        num_buckets=100,
    )
    column = tf.constant(["5|6|7|8", "", "9||3"])
    ids = feature.transform({"seq__item": column}).numpy()
    assert ids.tolist() == [[5, 6, 7], [-1, -1, -1], [9, 0, 3]]


def test_feature_set_reports_columns_and_specs():
    features = FeatureSet(
        [
            id_feature(hash_bucket_size=5),
            RawFeature("price", "price"),
            RawFeature("tags", "tags", value_dim=2),
        ]
    )
    assert features.input_columns() == {
        "c": "string",
        "price": "float",
        "tags": "string",
    }
    assert [spec.kind for spec in features.specs()] == [
        "sparse",
        "dense",
        "dense",
    ]
    with pytest.raises(ValueError, match="duplicate"):
        FeatureSet([id_feature(num_buckets=2), id_feature(num_buckets=2)])


def test_transforms_run_inside_tf_data_and_tf_function():
    feature = id_feature(vocab_list=["abc", "efg"])
    dataset = tf.data.Dataset.from_tensors({"c": T6_INPUT}).map(
        lambda columns: feature.transform(columns)
    )
    (from_dataset,) = list(dataset)
    traced = tf.function(feature.transform)({"c": T6_INPUT})
    assert from_dataset.numpy().tolist() == traced.numpy().tolist()
