"""Where a field of a text-format config is: field path ↔ line number.

Protobuf's parser keeps no source positions, so error messages about a
parsed config need this separate, schema-free scan of the text. The scan is
tolerant: on text protobuf rejected it still describes everything before
the error position, which is all a parse error needs.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# One path component: field name and its occurrence index in the parent
# message (0 for a singular field; the element index for a repeated one).
Key = tuple[tuple[str, int], ...]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+) | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)
    | (?P<word>[\w.+-]+) | (?P<punct>.)
    """,
    re.VERBOSE,
)
_COMPONENT = re.compile(r"(\w+)(?:\[(\d+)\])?$")
_CLOSE = {"{": "}", "<": ">"}


@dataclass(frozen=True)
class _Token:
    text: str
    line: int  # 1-based, as protobuf reports
    col: int  # 1-based
    is_string: bool


def _tokenize(text: str) -> list[_Token]:
    tokens = []
    line, line_start = 1, 0
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind not in ("space", "comment"):
            col = match.start() - line_start + 1
            tokens.append(_Token(match.group(), line, col, kind == "string"))
        newlines = match.group().count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + match.group().rindex("\n") + 1
    return tokens


@dataclass
class TextLocator:
    """Field occurrences of one config text, in text order."""

    source: str
    occurrences: list[tuple[int, int, Key]] = field(default_factory=list)
    _lines: dict[Key, int] = field(default_factory=dict)

    @classmethod
    def scan(cls, text: str, source: str) -> TextLocator:
        locator = cls(source)
        tokens = _tokenize(text)
        locator._body(tokens, 0, (), None)
        return locator

    def _record(self, key: Key, token: _Token) -> None:
        self.occurrences.append((token.line, token.col, key))
        self._lines.setdefault(key, token.line)

    def _body(
        self, tokens: list[_Token], pos: int, prefix: Key, close: str | None
    ) -> int:
        """Scans fields up to `close`; returns the position after it."""
        counts: dict[str, int] = defaultdict(int)
        while pos < len(tokens):
            token = tokens[pos]
            if token.text == close:
                return pos + 1
            if token.text in (",", ";", "}", ">"):
                pos += 1
                continue
            name, pos = self._name(tokens, pos)
            self._record(prefix + ((name, counts[name]),), token)
            if pos < len(tokens) and tokens[pos].text == ":":
                pos += 1
            if pos < len(tokens) and tokens[pos].text == "[":
                pos += 1
                while pos < len(tokens) and tokens[pos].text != "]":
                    if tokens[pos].text == ",":
                        pos += 1
                        continue
                    key = prefix + ((name, counts[name]),)
                    self._record(key, tokens[pos])
                    pos = self._value(tokens, pos, key)
                    counts[name] += 1
                pos += 1
            else:
                key = prefix + ((name, counts[name]),)
                pos = self._value(tokens, pos, key)
                counts[name] += 1
        return pos

    @staticmethod
    def _name(tokens: list[_Token], pos: int) -> tuple[str, int]:
        if tokens[pos].text != "[":
            return tokens[pos].text, pos + 1
        # Extension or Any type URL: "[a.b/c.D]".
        end = pos + 1
        while end < len(tokens) and tokens[end].text != "]":
            end += 1
        name = "".join(t.text for t in tokens[pos : end + 1])
        return name, end + 1

    def _value(self, tokens: list[_Token], pos: int, key: Key) -> int:
        if pos >= len(tokens):
            return pos
        token = tokens[pos]
        if token.text in _CLOSE:
            return self._body(tokens, pos + 1, key, _CLOSE[token.text])
        pos += 1
        # Adjacent string literals are concatenated into one value.
        while token.is_string and pos < len(tokens) and tokens[pos].is_string:
            pos += 1
        return pos

    def line_of(self, path: str) -> int | None:
        """Line of `path` ("a.b[2].c"), or of its nearest present parent."""
        key = parse_path(path)
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return None

    def locate(self, path: str) -> tuple[str, int]:
        """(source, line) of `path`; line 1 if no part of it is present."""
        return self.source, self.line_of(path) or 1

    def key_at(self, line: int, col: int) -> Key:
        """The field whose name or value is at or last before line:col."""
        found: Key = ()
        for occ_line, occ_col, key in self.occurrences:
            if (occ_line, occ_col) > (line, col):
                break
            found = key
        return found


def parse_path(path: str) -> Key:
    """ "a.b[2].c" → (("a", 0), ("b", 2), ("c", 0))."""
    key = []
    for part in path.split(".") if path else ():
        match = _COMPONENT.match(part)
        if match is None:
            return tuple(key)
        key.append((match.group(1), int(match.group(2) or 0)))
    return tuple(key)


def render_key(key: Key, descriptor: Descriptor | None) -> str:
    """Field path of `key`, with indices only on repeated fields."""
    parts = []
    for name, index in key:
        fd = descriptor.fields_by_name.get(name) if descriptor else None
        is_list = fd is not None and fd.is_repeated and not is_map(fd)
        parts.append(f"{name}[{index}]" if is_list else name)
        descriptor = fd.message_type if fd is not None else None
    return ".".join(parts)


def is_map(fd: FieldDescriptor) -> bool:
    return (
        fd.message_type is not None and fd.message_type.GetOptions().map_entry
    )
