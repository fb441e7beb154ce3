"""A write that fails inside a transaction leaves the shared connection usable (issue 13, 9)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.manifest import DocStatus, DocumentRecord, Manifest


def test_a_failed_write_rolls_back_and_the_next_one_commits(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "manifest.sqlite")
    try:
        with pytest.raises(UnicodeEncodeError):  # a surrogate, as os.walk decodes bad bytes
            manifest.mark_queued({"bad\udcff.txt": ("acme", "task-1"), "good.txt": ("acme", "t")})
        assert manifest.pending() == {}  # nothing of the failed batch landed
        manifest.mark_queued({"good.txt": ("acme", "task-2")})
        manifest.put(DocumentRecord("good.txt", "acme", "good.txt", DocStatus.INDEXED))
        assert manifest.pending().keys() == {"good.txt"}
        assert manifest.get("good.txt") is not None
    finally:
        manifest.close()
    reopened = Manifest(tmp_path / "manifest.sqlite")  # what was committed is on disk
    try:
        assert reopened.get("good.txt") is not None
    finally:
        reopened.close()


def test_store_files_are_private(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "data" / "manifest.sqlite")
    try:
        manifest.put(DocumentRecord("a.txt", "acme", "a.txt", DocStatus.INDEXED))
        files = list((tmp_path / "data").iterdir())
        assert {f.name for f in files} >= {"manifest.sqlite", "manifest.sqlite-wal"}
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    finally:
        manifest.close()
