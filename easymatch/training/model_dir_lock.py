"""One training run per model_dir: a lock file naming its holder.

Two runs on one model_dir would interleave their checkpoints and eval
results. The first run holds an advisory `flock` on `model_dir/train.lock`
for its lifetime and writes its pid, host and start time into the file;
a second run fails at once naming that holder. The kernel drops the flock
when its process dies however it dies, so a lock file left behind by a
killed run is taken over (with a warning) instead of blocking forever.

Under multi-worker strategies only the chief, which writes checkpoints,
takes the lock; the flock works on local and NFSv4 file systems.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time

from easymatch.errors import EasyMatchError

logger = logging.getLogger("easymatch")

LOCK_FILE = "train.lock"


def _describe(record: dict) -> str:
    return (
        f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, "
        f"started {record.get('started', '?')}"
    )


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", "replace")
    try:
        record = json.loads(text)
    except ValueError:
        return {"unreadable": text} if text else {}
    return record if isinstance(record, dict) else {}


class ModelDirLock:
    """`with ModelDirLock(model_dir):` owns model_dir for the block."""

    def __init__(self, model_dir: str) -> None:
        self.path = os.path.join(model_dir, LOCK_FILE)
        self._fd: int | None = None

    def acquire(self) -> None:
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise EasyMatchError(
                    f"{self.path}: cannot create the lock file: "
                    f"{error.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read(fd)
                os.close(fd)
                raise EasyMatchError(
                    f"{os.path.dirname(self.path)}: in use by another "
                    f"training run ({_describe(holder)}); lock {self.path}"
                ) from None
            # A releasing holder unlinks the file before it unlocks; a lock
            # on that unlinked file is no lock, so try again.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read(fd)
        if previous:
            logger.warning(
                "%s: taking over the lock of a run that ended without "
                "releasing it (%s)",
                self.path,
                _describe(previous),
            )
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ModelDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
