"""Which version directories easymatch.serve loads (real files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from easymatch.errors import EasyMatchError
from easymatch.serve.versions import VersionScanner, version_dirs


def write_export(path: Path, index: bool = False) -> None:
    for side in ("user", "item"):
        (path / side / "variables").mkdir(parents=True)
        (path / side / "saved_model.pb").write_bytes(b"pb")
    if index:
        (path / "item_index").mkdir()
        (path / "item_index" / "index.json").write_text("{}")


def test_single_export_directory_is_version_1(tmp_path):
    write_export(tmp_path)
    assert version_dirs(str(tmp_path)) == {1: str(tmp_path)}


def test_exporter_layout_versions_and_views(tmp_path):
    """export/best: numeric versions; views, tmp dirs and files are not."""
    for version in ("17", "23"):
        write_export(tmp_path / version)
    (tmp_path / "24.tmp-99").mkdir()
    (tmp_path / "user").mkdir()
    os.symlink("../23/user", tmp_path / "user" / "23")
    (tmp_path / "25").write_text("a file")
    assert version_dirs(str(tmp_path)) == {
        17: str(tmp_path / "17"),
        23: str(tmp_path / "23"),
    }


def test_a_per_tower_view_is_refused_with_the_fix(tmp_path):
    (tmp_path / "17").mkdir()
    (tmp_path / "17" / "saved_model.pb").write_bytes(b"pb")
    with pytest.raises(EasyMatchError, match="give the directory holding"):
        version_dirs(str(tmp_path))


def test_missing_base_path_is_an_error(tmp_path):
    with pytest.raises(EasyMatchError, match="not a directory"):
        version_dirs(str(tmp_path / "nope"))


def test_a_version_is_ready_once_complete_and_settled(tmp_path):
    scanner = VersionScanner(str(tmp_path))
    write_export(tmp_path / "1")
    assert scanner.newest_ready() is None  # first sight: not yet settled
    assert scanner.newest_ready().version == 1
    # Version 2 is being copied: towers present, index half there.
    write_export(tmp_path / "2")
    (tmp_path / "2" / "item_index").mkdir()
    (tmp_path / "2" / "item_index" / "item_ids.txt").write_text("a\n")
    assert scanner.newest_ready().version == 1
    assert scanner.newest_ready().version == 1
    (tmp_path / "2" / "item_index" / "index.json").write_text("{}")
    assert scanner.newest_ready().version == 1  # changed since last poll
    assert scanner.newest_ready().version == 2


def test_a_failed_version_is_retried_only_when_its_files_change(tmp_path):
    scanner = VersionScanner(str(tmp_path))
    write_export(tmp_path / "1")
    scanner.newest_ready()
    scanner.mark_failed(scanner.newest_ready())
    assert scanner.newest_ready() is None
    (tmp_path / "1" / "user" / "saved_model.pb").write_bytes(b"fixed pb")
    assert scanner.newest_ready() is None
    assert scanner.newest_ready().version == 1
