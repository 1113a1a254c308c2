"""Errors that the CLIs print as one line instead of a traceback."""


class EasyMatchError(Exception):
    """Base class: a user-facing problem with a config, data or a path."""


class ConfigError(EasyMatchError):
    """The pipeline config is invalid; the message names file, line, field."""


class DataError(EasyMatchError):
    """Input data is invalid; the message names file, column and row."""


def data_error_from_tf(error: Exception) -> DataError:
    """The one meaningful line of an error raised inside the input pipeline.

    Reader errors cross tf.data as text ("DataError: ..."); feature checks
    raise assertion errors whose message names the feature and column.
    """
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for marker in ("DataError: ", 'feature "'):
        for line in lines:
            if marker in line:
                start = line.index(marker)
                if marker == "DataError: ":
                    start += len(marker)
                return DataError(line[start:].split(" [[")[0])
    return DataError(lines[0] if lines else type(error).__name__)
