"""Directories that appear complete or not at all.

An export is written into `<path>.tmp-<pid>` next to its destination and
renamed into place (a rename within one file system is atomic), so a
watcher such as TF Serving, or a rerun, never sees half an export.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator

from easymatch.errors import EasyMatchError

TMP_SUFFIX = re.compile(r"\.tmp-(\d+)$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(parent: str) -> None:
    """Removes tmp directories left in `parent` by killed processes."""
    if not os.path.isdir(parent):
        return
    for name in os.listdir(parent):
        found = TMP_SUFFIX.search(name)
        if found and not _alive(int(found.group(1))):
            shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yields a fresh tmp directory that becomes `path` on success.

    On an exception the tmp directory is removed and `path` never exists;
    after a kill, the next call in the same parent removes the leftover.
    """
    path = os.path.abspath(path)
    if os.path.exists(path):
        raise EasyMatchError(f"{path}: already exists")
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    remove_stale_tmp(parent)
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
