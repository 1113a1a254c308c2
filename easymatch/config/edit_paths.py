"""Resolving --edit_config_json paths to the fields they name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from easymatch.config.convert import ConvertError, convert_scalar
from easymatch.config.locate import is_map

_SEGMENT = re.compile(r"(\w+)(?:\[\s*([^\]]*?)\s*\])?$")


@dataclass
class Target:
    """One field (or list element) an edit path names."""

    parent: Message
    fd: FieldDescriptor
    # Element index when the path selected one list element.
    index: int | None
    path: str


class EditError(Exception):
    """An edit that cannot be applied; `path` names the field."""

    def __init__(self, path: str, what: str) -> None:
        super().__init__(what)
        self.path, self.what = path, what


def split_path(path: str) -> list[str]:
    """Splits on dots outside brackets: "a[b.c=1].d" → ["a[b.c=1]", "d"]."""
    segments, depth, start = [], 0, 0
    for i, char in enumerate(path):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "." and depth == 0:
            segments.append(path[start:i])
            start = i + 1
    segments.append(path[start:])
    return segments


def resolve(config: Message, path: str) -> list[Target]:
    segments = split_path(path)
    current: list[tuple[Message, str]] = [(config, "")]
    targets: list[Target] = []
    several = False
    for n, segment in enumerate(segments):
        match = _SEGMENT.match(segment)
        if match is None:
            raise EditError(path, f'invalid path segment "{segment}"')
        name, selector = match.groups()
        last = n == len(segments) - 1
        following: list[tuple[Message, str]] = []
        for message, prefix in current:
            field_path = f"{prefix}.{name}" if prefix else name
            fd = message.DESCRIPTOR.fields_by_name.get(name)
            if fd is None:
                raise EditError(field_path, "unknown field")
            if several and fd.containing_oneof and not message.HasField(name):
                continue
            if selector is None:
                if last:
                    targets.append(Target(message, fd, None, field_path))
                elif fd.message_type is None or fd.is_repeated:
                    raise EditError(
                        field_path, "is a list or a value, not a message"
                    )
                else:
                    following.append((getattr(message, name), field_path))
                continue
            if not fd.is_repeated or is_map(fd):
                raise EditError(field_path, "is not a list")
            items = getattr(message, name)
            indices = _select(items, selector, fd, field_path)
            several = several or len(indices) != 1 or not selector.isdigit()
            for i in indices:
                element_path = f"{field_path}[{i}]"
                if last:
                    targets.append(Target(message, fd, i, element_path))
                elif fd.message_type is None:
                    raise EditError(element_path, "is a value, not a message")
                else:
                    following.append((items[i], element_path))
        current = following
    return targets


def _select(
    items: Any, selector: str, fd: FieldDescriptor, path: str
) -> list[int]:
    if selector.isdigit():
        if int(selector) >= len(items):
            raise EditError(
                f"{path}[{selector}]",
                f"no such element ({len(items)} elements)",
            )
        return [int(selector)]
    if "=" not in selector and ":" in selector:
        start, _, stop = selector.partition(":")
        try:
            bounds = slice(
                int(start) if start else None, int(stop or len(items))
            )
        except ValueError:
            raise EditError(path, f'invalid slice "[{selector}]"') from None
        return list(range(len(items)))[bounds]
    cond_path, sep, wanted = selector.partition("=")
    if not sep or fd.message_type is None:
        raise EditError(path, f'invalid selector "[{selector}]"')
    return [
        i
        for i, item in enumerate(items)
        if _matches(item, cond_path.strip(), wanted.strip(), path)
    ]


def _matches(item: Message, cond_path: str, wanted: str, path: str) -> bool:
    message = item
    *parents, leaf = cond_path.split(".")
    for name in parents:
        fd = message.DESCRIPTOR.fields_by_name.get(name)
        if fd is None or fd.message_type is None or fd.is_repeated:
            raise EditError(path, f'"{cond_path}" is not a value field')
        if not message.HasField(name):
            return False
        message = getattr(message, name)
    fd = message.DESCRIPTOR.fields_by_name.get(leaf)
    if fd is None or fd.is_repeated or fd.message_type is not None:
        raise EditError(path, f'"{cond_path}" is not a value field')
    try:
        return getattr(message, fd.name) == convert_scalar(fd, wanted)
    except ConvertError:
        return False
