"""Loading and saving the text-format pipeline config."""

from __future__ import annotations

import os
import re
import tempfile

from google.protobuf import descriptor_pool, text_format

from easymatch.config.edit import apply_edits
from easymatch.config.locate import TextLocator, render_key
from easymatch.config.report import format_problem
from easymatch.config.validate import check_config
from easymatch.errors import ConfigError
from easymatch.protos import pipeline_pb2

EasyRecConfig = pipeline_pb2.EasyRecConfig

_POSITION = re.compile(r"^\d+:\d+ : ")
# protobuf's wording → ours, first match wins; `{0}`.. are the groups.
_PARSE_PROBLEMS = [
    (r'Message type ".*" has no field named "(.*)"\.', "unknown field"),
    (r'Message type ".*" should not have multiple ".*" fields\.', "set twice"),
    (
        r'Field ".*" is specified along with field "(.*)", another member '
        r'of oneof "(.*)" for message type ".*"\.',
        'conflicts with "{0}": set only one field of oneof "{1}"',
    ),
    (r"Expected string but found: (.*)", "expected a quoted string, got {0}"),
    (r"Couldn't parse integer: (.*)", "expected an integer, got {0}"),
    (r"Couldn't parse float: (.*)", "expected a number, got {0}"),
]
_ENUM_PROBLEM = re.compile(
    r'Enum type "(.*)" has no value (?:named|with number) (.*)\.'
)


def load_pipeline_config(
    path: str, edit_config_json: str | None = None
) -> EasyRecConfig:
    """Parses and validates the config at `path`; raises ConfigError.

    `edit_config_json` (the CLIs' --edit_config_json) is applied before
    validating, so it can repair a config that is invalid as written,
    e.g. by replacing an OdpsDataset.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config: {e}") from None
    return load_pipeline_config_from_text(text, path, edit_config_json)


def parse_pipeline_config(path: str) -> EasyRecConfig:
    """Parses the config at `path` without validating it (for tools that
    rewrite a config, e.g. tools/create_mock_data.py); raises ConfigError
    on text that does not parse."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the config: {e}") from None
    config = EasyRecConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        locator = TextLocator.scan(text, path)
        raise ConfigError(_parse_problem(e, text, locator)) from None
    return config


def load_pipeline_config_from_text(
    text: str,
    source_name: str = "<string>",
    edit_config_json: str | None = None,
) -> EasyRecConfig:
    """As load_pipeline_config; errors name `source_name` as the file."""
    locator = TextLocator.scan(text, source_name)
    config = EasyRecConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as e:
        raise ConfigError(_parse_problem(e, text, locator)) from None
    if edit_config_json is None:
        check_config(config, locator)
    else:
        check_config(config, apply_edits(config, edit_config_json, locator))
    return config


def save_pipeline_config(config: EasyRecConfig, path: str) -> None:
    """Writes `config` as text atomically: readers see old or new, whole."""
    text = text_format.MessageToString(config, as_utf8=True)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        os.unlink(tmp_path)
        raise


def _parse_problem(
    error: text_format.ParseError, text: str, locator: TextLocator
) -> str:
    line, col = error.GetLine() or 1, error.GetColumn() or 1
    key = locator.key_at(line, col)
    path = render_key(key, EasyRecConfig.DESCRIPTOR)
    message = _POSITION.sub("", str(error), count=1)
    lines = text.splitlines()
    quoted_line = f"'{lines[line - 1]}': " if line <= len(lines) else ""
    message = message.removeprefix(quoted_line)
    return format_problem(locator.source, line, path, _describe(message))


def _describe(message: str) -> str:
    enum = _ENUM_PROBLEM.fullmatch(message)
    if enum:
        values = descriptor_pool.Default().FindEnumTypeByName(enum.group(1))
        names = ", ".join(value.name for value in values.values)
        return f"unknown value {enum.group(2)}; expected one of {names}"
    for pattern, wording in _PARSE_PROBLEMS:
        match = re.fullmatch(pattern, message)
        if match:
            return wording.format(*match.groups())
    return message[:1].lower() + message[1:].rstrip(".")
