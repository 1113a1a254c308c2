"""Version directories under --model_base_path, found as TF Serving does.

`model_base_path` is either a training exporter's `export/<best|latest>`
(numeric version directories, each an export directory) or one export
directory (`user/`, `item/`, maybe `item_index/`), served as version 1.
A version is loaded only once it is complete (both towers' saved_model.pb
and, with an item index, its index.json) and settled: its files (names,
sizes, modification times) were the same at two polls in a row, so a
directory still being copied in place is not read half-written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from easymatch.errors import EasyMatchError

SINGLE_VERSION = 1
REQUIRED = (
    os.path.join("user", "saved_model.pb"),
    os.path.join("item", "saved_model.pb"),
)
ITEM_INDEX = "item_index"
INDEX_PARAMS = os.path.join(ITEM_INDEX, "index.json")

Stamp = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class Candidate:
    """A version directory and the state of its files when seen."""

    version: int
    path: str
    stamp: Stamp


def is_export(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, f)) for f in REQUIRED)


def version_dirs(base: str) -> dict[int, str]:
    """version → directory; a single export directory is version 1."""
    if not os.path.isdir(base):
        raise EasyMatchError(f"--model_base_path {base}: not a directory")
    if os.path.isdir(os.path.join(base, "user")) and not any(
        name.isdigit() for name in os.listdir(base)
    ):
        return {SINGLE_VERSION: base}
    found = {}
    for name in os.listdir(base):
        path = os.path.join(base, name)
        # `<ts>.tmp-<pid>` (being written) is not a number, so never seen.
        if name.isdigit() and os.path.isdir(path):
            if os.path.isfile(os.path.join(path, "saved_model.pb")):
                raise EasyMatchError(
                    f"--model_base_path {base}: {name}/ is one SavedModel "
                    "(a per-tower view such as export/best/user); give the "
                    "directory holding the versions (export/best)"
                )
            found[int(name)] = path
    return found


def stamp(path: str) -> Stamp:
    """Every file under `path` (links followed) with size and mtime."""
    entries = []
    for root, _, files in os.walk(path, followlinks=True):
        for name in files:
            full = os.path.join(root, name)
            try:
                info = os.stat(full)
            except FileNotFoundError:
                continue  # removed while listing: the next poll sees it
            rel = os.path.relpath(full, path)
            entries.append((rel, info.st_size, info.st_mtime_ns))
    return tuple(sorted(entries))


def complete(path: str, files: Stamp) -> bool:
    names = {entry[0] for entry in files}
    if not all(required in names for required in REQUIRED):
        return False
    has_index = any(n.startswith(ITEM_INDEX + os.sep) for n in names)
    return not has_index or INDEX_PARAMS in names


class VersionScanner:
    """Polls `base`; yields the newest version that is complete and
    settled, and is not one that already failed to load unchanged."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.previous: dict[int, Stamp] = {}
        self.failed: dict[int, Stamp] = {}

    def newest_ready(self) -> Candidate | None:
        seen: dict[int, Stamp] = {}
        ready = None
        for version, path in sorted(version_dirs(self.base).items()):
            files = stamp(path)
            seen[version] = files
            if (
                complete(path, files)
                and self.previous.get(version) == files
                and self.failed.get(version) != files
            ):
                ready = Candidate(version, path, files)
        self.previous = seen
        return ready

    def mark_failed(self, candidate: Candidate) -> None:
        self.failed[candidate.version] = candidate.stamp
