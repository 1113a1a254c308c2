"""Errors that the CLIs print as one line instead of a traceback."""


class EasyMatchError(Exception):
    """Base class: a user-facing problem with a config, data or a path."""


class ConfigError(EasyMatchError):
    """The pipeline config is invalid; the message names file, line, field."""


class DataError(EasyMatchError):
    """Input data is invalid; the message names file, column and row."""
