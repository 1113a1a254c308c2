"""tokenize_feature: the same token ids as the reference tokenizer library.

The vocab files are generated here (the mock one of tools/
create_mock_data.py, and byte-level BPE files trained with HuggingFace
`tokenizers` on generated text, with added tokens, Lowercase and
add_prefix_space); the ids of easymatch's in-graph BPE must equal
`tokenizers`' for every text.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tokenizers import (
    AddedToken,
    Tokenizer,
    models,
    normalizers,
    pre_tokenizers,
    trainers,
)

from easymatch.errors import ConfigError
from easymatch.features.tokenize_feature import TokenizeFeature
from easymatch.features.tokenizer_file import WORDS, write_mock_tokenizer
from easymatch.protos import feature_pb2

OPT = feature_pb2.TextNormalizeOption
SYLLABLES = [
    "ka", "to", "ri", "mu", "sen", "ly", "ing", "the", "qu", "x", "中",
    "文", "é", "ß", "'s", "'ll", "!", "?", "..", "3", "42", "-", "Ａ",
]  # fmt: skip
GAPS = [" ", " ", "  ", "\n", "", "\t", " \u3000", "   "]


def _texts(rng: random.Random, count: int) -> list[str]:
    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))

    return [
        "".join(word() + rng.choice(GAPS) for _ in range(rng.randint(0, 9)))
        for _ in range(count)
    ]


def _ids(feature: TokenizeFeature, texts: list[str]) -> list[list[int]]:
    padded = feature.transform({"title": tf.constant(texts)}).numpy()
    return [[int(i) for i in row if i >= 0] for row in padded]


def _feature(path: Path, **kwargs) -> TokenizeFeature:
    return TokenizeFeature("title_tok", "title", 8, str(path), **kwargs)


def test_mock_tokenizer_matches_reference(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    write_mock_tokenizer(str(path))
    reference = Tokenizer.from_file(str(path))
    rng = random.Random(0)
    texts = (
        [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))
            for _ in range(100)
        ]
        + _texts(rng, 200)
        + ["", " ", "red  dress ", "Red!", "it's 2024"]
    )
    feature = _feature(path)
    assert feature.num_embeddings == reference.get_vocab_size()
    assert _ids(feature, texts) == [reference.encode(t).ids for t in texts]


@pytest.mark.parametrize("lowercase, prefix", [(False, False), (True, True)])
def test_trained_bpe_matches_reference(tmp_path, lowercase, prefix) -> None:
    rng = random.Random(1)
    tokenizer = Tokenizer(models.BPE())
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix)
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )
    tokenizer.train_from_iterator(_texts(rng, 3000), trainer)
    tokenizer.add_tokens([AddedToken("  ", normalized=True)])
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    reference = Tokenizer.from_file(str(path))
    texts = _texts(rng, 400) + ["<|endoftext|>ka to", "ka  to  ", ""]
    feature = _feature(path)
    assert feature.num_embeddings == reference.get_vocab_size()
    assert _ids(feature, texts) == [reference.encode(t).ids for t in texts]


def test_normalizer_and_default_value(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    write_mock_tokenizer(str(path))
    reference = Tokenizer.from_file(str(path))
    feature = _feature(
        path,
        default_value="red hat",
        options=[OPT.TEXT_SBC2DBC, OPT.TEXT_UPPER2LOWER],
    )
    # full-width letters and the ideographic space become ASCII; an empty
    # text takes the default before tokenizing.
    texts = ["ＲＥＤ\u3000Ｄress", "", "BLUE"]
    expected = ["red dress", "red hat", "blue"]
    assert _ids(feature, texts) == [reference.encode(t).ids for t in expected]
    upper = _feature(path, options=[OPT.TEXT_LOWER2UPPER], max_length=4)
    # longer than max_length: left as it is
    assert _ids(upper, ["red", "red hat"]) == [
        reference.encode("RED").ids,
        reference.encode("red hat").ids,
    ]


def test_padding_and_exported_graph(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    write_mock_tokenizer(str(path))
    feature = _feature(path)
    ids = feature.transform({"title": tf.constant(["red", "", "blue hat"])})
    # left-aligned, padded with -1 to the longest row
    assert ids.dtype == tf.int64 and ids.shape == (3, 3)
    assert ids.numpy()[:2].tolist() == [[257, -1, -1], [-1, -1, -1]]

    class Module(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.feature = feature

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, texts):
            return self.feature.transform({"title": texts})

    tf.saved_model.save(Module(), str(tmp_path / "saved"))
    path.unlink()  # the SavedModel holds its own tables
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(
        loaded(tf.constant(["red", "", "blue hat"])), ids
    )


def test_missing_or_malformed_tokenizer_names_feature_and_path(tmp_path):
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as info:
        _feature(missing)
    assert str(info.value).startswith(
        f'tokenize_feature "title_tok": cannot read {missing}'
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"title_tok.*{bad}: not JSON"):
        _feature(bad)
    word_level = tmp_path / "wl.json"
    word_level.write_text(
        json.dumps({"model": {"type": "WordLevel", "vocab": {}}}),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"not a supported tokenizer.json"):
        _feature(word_level)
