"""Errors that the CLIs print as one line instead of a traceback.

`EasyMatchError` and its kinds are the user's to fix (config, data, a
path); anything else is easymatch's own bug and the CLIs report it as an
internal error with its traceback kept (easymatch.cli).
"""

from __future__ import annotations

import errno
import os
import re
from typing import NoReturn

# easymatch's in-graph input checks (easymatch.features.checks) wrap their
# message in these, so it can be told apart from any other TF error and
# cut out of the runtime's text around it.
CHECK_OPEN = "<easymatch-check "
CHECK_CLOSE = " easymatch-check>"


class EasyMatchError(Exception):
    """Base class: a user-facing problem with a config, data or a path."""


class ConfigError(EasyMatchError):
    """The pipeline config is invalid; the message names file, line, field."""


class DataError(EasyMatchError):
    """Input data is invalid; the message names file, column and row."""


class DiskError(EasyMatchError):
    """A path cannot be written: read-only, full, or not permitted."""


DISK_ERRNOS = {
    errno.EROFS,
    errno.ENOSPC,
    errno.EFBIG,
    errno.EDQUOT,
    errno.EACCES,
    errno.EPERM,
}
# TF's file errors read "<path>; <strerror>".
_TF_DISK_ERROR = re.compile(
    r"(/[^;\s]*); (Read-only file system|No space left on device|"
    r"File too large|Disk quota exceeded|Permission denied)"
)
# Scratch names under which checkpoints (`<prefix>_temp`) and exports
# (`<dir>.tmp-<pid>`, easymatch.export.atomic) are written first.
_SCRATCH = re.compile(r"^(.*?)(?:/[^/]*_temp(?:/.*)?|\.tmp-\d+(?:/.*)?)$")


def disk_error(error: BaseException) -> DiskError | None:
    """The DiskError an OS or TF error stands for, or None.

    It names the directory the user chose (model_dir, export_dir), not
    the scratch file inside it that failed.
    """
    if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
        path, reason = error.filename, error.strerror
    else:
        found = _TF_DISK_ERROR.search(str(error))
        if found is None:
            return None
        path, reason = found.group(1), found.group(2)
    if path is None:
        return DiskError(reason)
    scratch = _SCRATCH.match(os.fspath(path))
    return DiskError(f"{scratch.group(1) if scratch else path}: {reason}")


def unescape_assert_text(text: str) -> str:
    # Assert messages reach Python C-escaped once.
    return re.sub(r"\\(.)", r"\1", text)


def data_error_from_tf(error: Exception, where: str = "") -> DataError | None:
    """The DataError a TF error stands for, or None if it is not one.

    Reader errors cross tf.data as text ("DataError: ..."), already naming
    file, column and row; a failed input check carries its message between
    CHECK_OPEN and CHECK_CLOSE, which gets `where` (the input) in front.
    """
    text = str(error)
    found = re.search(r"DataError: ([^\n]*)", text)
    if found:
        return DataError(found.group(1).split(" [[")[0])
    start = text.find(CHECK_OPEN)
    end = text.find(CHECK_CLOSE, start)
    if start < 0 or end < 0:
        return None
    message = unescape_assert_text(text[start + len(CHECK_OPEN) : end])
    return DataError(f"{where}: {message}" if where else message)


def raise_tf_error(error: Exception, where: str = "") -> NoReturn:
    """Raises the DataError a TF error stands for, else the error itself:
    an error that no input check raised is not bad data."""
    data_error = data_error_from_tf(error, where)
    if data_error is None:
        raise error
    raise data_error from None
