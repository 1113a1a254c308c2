"""tokenize_feature vocab files: HuggingFace `tokenizer.json` (BPE).

TorchEasyRec's tokenize_feature reads its `vocab_file` with
tokenizers-cpp, i.e. a HuggingFace tokenizers file. easymatch implements
the byte-level BPE kind (GPT-2 / GPT-NeoX / RoBERTa files: model BPE,
pre_tokenizer ByteLevel) in stock TF ops (`features/bpe.py`); this module
reads and checks such a file, and writes a small one for mock data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from easymatch.errors import ConfigError

# Words of the mock texts (tools/create_mock_data.py).
WORDS = [
    "red", "blue", "green", "dress", "shoe", "shoes", "phone", "case",
    "cotton", "summer", "winter", "women", "men", "kids", "new", "sale",
    "2024", "big", "small", "cup", "lamp", "desk", "bag", "hat",
]  # fmt: skip

# Normalizers that only change text outside what the mock and tests use
# are refused rather than approximated.
_NORMALIZERS = {"Lowercase", "NFC"}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte → printable character map (ByteLevel)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


@dataclass(frozen=True)
class BpeTokenizer:
    """What the TF graph needs from a tokenizer.json."""

    vocab: dict[str, int]
    merges: list[tuple[str, str]]
    # added tokens matched in the raw text before pre-tokenization
    added: dict[str, int]
    lowercase: bool
    add_prefix_space: bool
    ignore_merges: bool

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding table (tokenizers' get_vocab_size)."""
        return max([*self.vocab.values(), *self.added.values()]) + 1


def read_tokenizer(path: str, where: str) -> BpeTokenizer:
    """Reads `path`; ConfigError naming `where` (the feature) and the path."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        raise ConfigError(
            f"{where}: cannot read {path}: {e.strerror}"
        ) from None
    except ValueError as e:
        raise ConfigError(f"{where}: {path}: not JSON: {e}") from None
    try:
        return _parse(spec)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(
            f"{where}: {path}: not a supported tokenizer.json ({e})"
        ) from None


def _parse(spec: dict) -> BpeTokenizer:
    model = spec["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"model type {model.get('type')!r}; only BPE")
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise ValueError("pre_tokenizer must be ByteLevel with use_regex")
    for key in ("dropout", "unk_token", "continuing_subword_prefix"):
        if model.get(key):
            raise ValueError(f"model.{key} is not supported")
    if model.get("end_of_word_suffix"):
        raise ValueError("model.end_of_word_suffix is not supported")
    normalizers = _normalizers(spec.get("normalizer"))
    unknown = set(normalizers) - _NORMALIZERS
    if unknown:
        raise ValueError(f"normalizer {sorted(unknown)} is not supported")
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in model["merges"]
    ]
    if any(len(m) != 2 for m in merges):
        raise ValueError("a merge is not a pair")
    added = {}
    lowercase = "Lowercase" in normalizers
    for token in spec.get("added_tokens") or []:
        content = token["content"]
        if lowercase and not token.get("normalized", True):
            # tokenizers matches these before lowercasing; easymatch after.
            if content.lower() != content:
                raise ValueError(
                    f"added token {content!r} is not normalized but has "
                    "upper-case letters under a Lowercase normalizer"
                )
        if any(token.get(k) for k in ("single_word", "lstrip", "rstrip")):
            raise ValueError(
                f"added token {token['content']!r}: single_word, lstrip "
                "and rstrip are not supported"
            )
        added[content] = int(token["id"])
    return BpeTokenizer(
        vocab={str(k): int(v) for k, v in model["vocab"].items()},
        merges=merges,
        added=added,
        lowercase=lowercase,
        add_prefix_space=bool(pre.get("add_prefix_space", False)),
        ignore_merges=bool(model.get("ignore_merges", False)),
    )


def _normalizers(spec: dict | None) -> list[str]:
    if not spec:
        return []
    if spec["type"] == "Sequence":
        return [n for s in spec["normalizers"] for n in _normalizers(s)]
    return [spec["type"]]


def write_mock_tokenizer(path: str) -> None:
    """A byte-level BPE tokenizer.json whose merges spell WORDS."""
    byte_chars = bytes_to_unicode()
    vocab = {byte_chars[b]: i for i, b in enumerate(sorted(byte_chars))}
    merges: list[list[str]] = []
    space = byte_chars[ord(" ")]
    for word in WORDS:
        for symbols in (word, space + word):
            token = symbols[0]
            for char in symbols[1:]:
                if token + char not in vocab:
                    merges.append([token, char])
                    vocab[token + char] = len(vocab)
                token += char
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        },
        "post_processor": None,
        "decoder": {
            "type": "ByteLevel",
            "add_prefix_space": True,
            "trim_offsets": True,
            "use_regex": True,
        },
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [" ".join(m) for m in merges],
        },
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
