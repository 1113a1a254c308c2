"""--edit_config_json: patch a config with {"dotted.path[i]": value}.

Follows tzrec/utils/config_util.py edit_config: a segment may select list
elements with `[i]`, `[a:b]`, `[:]` or `[field.path=value]`; a key holding
";" sets several paths from a ";"-joined string value; message fields take
a JSON object or text format ("{ ... }"). Unlike TorchEasyRec, a selection
of several elements never creates an unset oneof member (so
`feature_configs[:].id_feature.embedding_dim` skips raw features), and a
value is split on ";" only when its key is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, text_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from easymatch.config.convert import ConvertError, convert_scalar
from easymatch.config.edit_paths import EditError, Target, resolve
from easymatch.config.locate import is_map
from easymatch.config.report import Locator, format_problem
from easymatch.config.validate import check_config
from easymatch.errors import ConfigError
from easymatch.protos import pipeline_pb2

EDIT_SOURCE = "--edit_config_json"

_PATH_PART = re.compile(r"(\w+)(?:\[(\d+)\])?")


@dataclass
class EditSource:
    """Locates edited fields in the edit JSON and the others in `base`."""

    base: Locator | None = None
    edited: list[tuple[str, int]] = field(default_factory=list)

    def locate(self, path: str) -> tuple[str, int]:
        parts = _PATH_PART.findall(path)
        for edited_path, line in self.edited:
            edited = _PATH_PART.findall(edited_path)
            if all(
                name == e_name
                and (not index or not e_index or index == e_index)
                for (name, index), (e_name, e_index) in zip(
                    parts, edited, strict=False
                )
            ):
                return EDIT_SOURCE, line
        if self.base is not None:
            return self.base.locate(path)
        return EDIT_SOURCE, 1


def edit_config(
    config: pipeline_pb2.EasyRecConfig, edit_json: str
) -> pipeline_pb2.EasyRecConfig:
    """Applies --edit_config_json to `config` in place and revalidates.

    On a ConfigError `config` is left unchanged.
    """
    edited = pipeline_pb2.EasyRecConfig()
    edited.CopyFrom(config)
    check_config(edited, apply_edits(edited, edit_json))
    config.CopyFrom(edited)
    return config


def apply_edits(
    config: Message, edit_json: str, base: Locator | None = None
) -> EditSource:
    """Applies the edits to `config`; returns where each edit was made."""
    try:
        edits = json.loads(edit_json)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{EDIT_SOURCE}:{e.lineno}: invalid JSON: {e.msg}"
        ) from None
    if not isinstance(edits, dict):
        raise ConfigError(f"{EDIT_SOURCE}:1: expected a JSON object")
    source = EditSource(base)
    for key, value in edits.items():
        line = _line_of_key(edit_json, key)
        try:
            for path, part in _split_multi(key, value):
                for target in resolve(config, path):
                    _assign(target, part)
                    source.edited.append((target.path, line))
        except EditError as e:
            raise ConfigError(
                format_problem(EDIT_SOURCE, line, e.path, e.what)
            ) from None
    return source


def _line_of_key(text: str, key: str) -> int:
    position = text.find(json.dumps(key, ensure_ascii=False))
    return text.count("\n", 0, position) + 1 if position >= 0 else 1


def _split_multi(key: str, value: Any) -> list[tuple[str, Any]]:
    if ";" not in key:
        return [(key.strip(), value)]
    keys = [k.strip() for k in key.split(";")]
    if not isinstance(value, str) or len(value.split(";")) != len(keys):
        raise EditError(key, f'needs a string of {len(keys)} ";"-joined values')
    return list(zip(keys, [v.strip() for v in value.split(";")], strict=True))


def _assign(target: Target, value: Any) -> None:
    parent, fd, path = target.parent, target.fd, target.path
    try:
        if target.index is not None:
            items = getattr(parent, fd.name)
            if fd.message_type is None:
                items[target.index] = convert_scalar(fd, value)
            else:
                _set_message(items[target.index], value)
        elif is_map(fd):
            _set_map(getattr(parent, fd.name), fd, value)
        elif fd.is_repeated:
            _set_list(parent, fd, value)
        elif fd.message_type is not None:
            _set_message(getattr(parent, fd.name), value)
        else:
            setattr(parent, fd.name, convert_scalar(fd, value))
    except (ConvertError, json_format.ParseError) as e:
        raise EditError(path, str(e)) from None
    except text_format.ParseError as e:
        raise EditError(path, f"invalid text format: {e}") from None


def _set_message(message: Message, value: Any) -> None:
    message.Clear()
    message.SetInParent()
    if isinstance(value, dict):
        json_format.ParseDict(value, message)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1]
        text_format.Parse(text, message)
    else:
        raise ConvertError("expected a JSON object or text format { ... }")


def _set_map(entries: Any, fd: FieldDescriptor, value: Any) -> None:
    if not isinstance(value, dict):
        raise ConvertError("expected a JSON object")
    key_fd = fd.message_type.fields_by_name["key"]
    value_fd = fd.message_type.fields_by_name["value"]
    entries.clear()
    for k, v in value.items():
        entries[convert_scalar(key_fd, k)] = convert_scalar(value_fd, v)


def _set_list(parent: Message, fd: FieldDescriptor, value: Any) -> None:
    parent.ClearField(fd.name)
    if isinstance(value, str) and value.strip().startswith("["):
        text_format.Merge(f"{fd.name}: {value}", parent)
        return
    values = value if isinstance(value, list) else [value]
    items = getattr(parent, fd.name)
    for element in values:
        if fd.message_type is None:
            items.append(convert_scalar(fd, element))
        else:
            _set_message(items.add(), element)
