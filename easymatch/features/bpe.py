"""Byte-level BPE (HuggingFace tokenizers' BPE + ByteLevel) in stock TF ops.

The same token ids as the `tokenizers` library for a tokenizer.json of
that kind (tests/test_features_tokenize.py compares them), computed by
ops every TF Serving build has (regex, string and lookup-table ops and a
while loop), so exported towers tokenize text themselves.

Steps, as tokenizers runs them: added tokens are cut out of the text
first; the rest is lowercased if the normalizer says so, split by
GPT-2's pre-tokenizer regex, each piece's UTF-8 bytes are mapped to
printable characters, and BPE merges the lowest-ranked adjacent pair
(leftmost first) until no pair has a rank.
"""

from __future__ import annotations

import tensorflow as tf

from easymatch.features.tokenizer_file import BpeTokenizer, bytes_to_unicode

# GPT-2's pattern needs the look-ahead `\s+(?!\S)`, which RE2 lacks: a
# whitespace run followed by a non-space gives up its last character to
# the next piece. _MARK is put in front of that last character first, so
# that no alternative below can run across it.
_MARK = "\x01"
_CUT = "\x00"
_SPACES = r"\t\n\v\f\r \x{85}\p{Z}"
_WS = f"[{_SPACES}]"
_NON_WS = f"[^{_SPACES}]"
_PIECES = (
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+"
    rf"| ?[^{_SPACES}\p{{L}}\p{{N}}{_MARK}]+|{_WS}+"
)
_NO_RANK = 2**31 - 1


class BytePairEncoder(tf.Module):
    """Text [N] → token ids, a RaggedTensor [N, None] of int64."""

    def __init__(self, tokenizer: BpeTokenizer) -> None:
        super().__init__(name=None)
        self.tokenizer = tokenizer
        self._vocab = _table(
            list(tokenizer.vocab), list(tokenizer.vocab.values())
        )
        pairs = [f"{a} {b}" for a, b in tokenizer.merges]
        self._ranks = _table(pairs, list(range(len(pairs))), _NO_RANK)
        byte_map = bytes_to_unicode()
        self._bytes = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant([bytes([b]) for b in byte_map]),
                tf.constant(list(byte_map.values())),
            ),
            default_value="",
        )
        self._added = (
            _table(list(tokenizer.added), list(tokenizer.added.values()))
            if tokenizer.added
            else None
        )

    def __call__(self, texts: tf.Tensor) -> tf.RaggedTensor:
        if self.tokenizer.lowercase:
            texts = tf.strings.lower(texts, encoding="utf-8")
        segments, is_added = self._split_added(texts)
        flat, added = segments.flat_values, is_added.flat_values
        words = self._pre_tokenize(tf.where(added, "", flat))
        ids = self._encode_words(words.flat_values)
        per_segment = words.with_flat_values(ids).merge_dims(1, 2)
        if self._added is not None:
            # an added token's segment has no BPE ids, only its own id
            own = tf.RaggedTensor.from_row_lengths(
                tf.boolean_mask(self._added.lookup(flat), added),
                tf.cast(added, tf.int64),
            )
            per_segment = tf.concat([per_segment, own], axis=1)
        return segments.with_flat_values(per_segment).merge_dims(1, 2)

    def _split_added(self, texts: tf.Tensor):
        """[N] → segments [N, S] and whether each is an added token."""
        if self._added is None:
            segments = tf.RaggedTensor.from_tensor(tf.expand_dims(texts, 1))
            return segments, tf.zeros_like(segments, tf.bool)
        names = sorted(self.tokenizer.added, key=len, reverse=True)
        pattern = "|".join(_quote(n) for n in names)
        marked = tf.strings.regex_replace(texts, f"({pattern})", "\x02\\1\x02")
        segments = tf.strings.split(marked, "\x02")
        segments = tf.ragged.boolean_mask(
            segments, tf.strings.length(segments) > 0
        )
        found = self._added.lookup(segments.flat_values) >= 0
        return segments, segments.with_flat_values(found)

    def _pre_tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        if self.tokenizer.add_prefix_space:
            texts = tf.where(
                tf.strings.regex_full_match(texts, r"(?s)( .*)?"),
                texts,
                " " + texts,
            )
        texts = tf.strings.regex_replace(
            texts, f"({_WS})({_NON_WS})", f"{_MARK}\\1\\2"
        )
        texts = tf.strings.regex_replace(texts, f"({_PIECES})", f"{_CUT}\\1")
        texts = tf.strings.regex_replace(texts, _MARK, "")
        words = tf.strings.split(texts, _CUT)
        return tf.ragged.boolean_mask(words, tf.strings.length(words) > 0)

    def _encode_words(self, words: tf.Tensor) -> tf.RaggedTensor:
        """[W] pre-tokenized words → ids [W, None]; each distinct word once."""
        unique, index = tf.unique(words)
        chars = self._bytes.lookup(tf.strings.bytes_split(unique))
        mapped = tf.strings.reduce_join(chars, axis=1)
        symbols = tf.strings.unicode_split(mapped, "UTF-8")
        merged = self._merge(symbols.to_tensor(""))
        if self.tokenizer.ignore_merges:
            whole = self._vocab.lookup(mapped) >= 0
            merged = tf.where(
                whole[:, None],
                tf.concat(
                    [mapped[:, None], tf.fill(tf.shape(merged) - [0, 1], "")],
                    axis=1,
                ),
                merged,
            )
        tokens = tf.ragged.boolean_mask(merged, tf.strings.length(merged) > 0)
        ids = tokens.with_flat_values(self._vocab.lookup(tokens.flat_values))
        # symbols outside the vocab are dropped (no unk_token)
        ids = tf.ragged.boolean_mask(ids, ids >= 0)
        return tf.gather(ids, index)

    def _merge(self, symbols: tf.Tensor) -> tf.Tensor:
        """BPE on [U, L] symbols ("" pads); returns [U, L], "" pads."""
        pad = tf.fill([tf.shape(symbols)[0], 1], "")
        symbols = tf.concat([symbols, pad, pad], axis=1)
        width = tf.shape(symbols)[1]
        positions = tf.range(width - 1)

        def body(current: tf.Tensor, _):
            left, right = current[:, :-1], current[:, 1:]
            valid = (tf.strings.length(left) > 0) & (
                tf.strings.length(right) > 0
            )
            ranks = tf.where(
                valid, self._ranks.lookup(left + " " + right), _NO_RANK
            )
            best = tf.reduce_min(ranks, axis=1)
            at = tf.argmin(ranks, axis=1, output_type=tf.int32)[:, None]
            source = tf.where(positions[None, :] > at, positions + 1, positions)
            shifted = tf.gather(current, source, batch_dims=1)
            joined = tf.gather(current, at, batch_dims=1) + tf.gather(
                current, at + 1, batch_dims=1
            )
            merged = tf.where(positions[None, :] == at, joined, shifted)
            merged = tf.concat([merged, pad], axis=1)
            active = best < _NO_RANK
            return tf.where(active[:, None], merged, current), tf.reduce_any(
                active
            )

        current, _ = tf.while_loop(
            lambda _, more: more,
            body,
            (symbols, tf.constant(True)),
            shape_invariants=(tf.TensorShape([None, None]), tf.TensorShape([])),
        )
        return current


def _table(keys: list[str], values: list[int], default: int = -1):
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(keys, tf.string), tf.constant(values, tf.int64)
        ),
        default_value=default,
    )


def _quote(text: str) -> str:
    """A literal for RE2: ASCII other than letters and digits as \\x{..}."""
    return "".join(
        c if not c.isascii() or c.isalnum() else f"\\x{{{ord(c):x}}}"
        for c in text
    )
