"""Versioned state (issue 16): stores written before schema versions existed upgrade in place.

`tests/data/*_v0.sql` are dumps of a manifest and a key store made by that release's code (commit
025775f), so these tests open exactly what an existing data dir holds.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.manifest import DocStatus, DocumentRecord, Manifest, RunSummary
from core.sqlite import SchemaError
from core.state.migrate import head_of
from core.state.stores import MANIFEST
from tests.support.stores import key_store

DATA = Path(__file__).parent / "data"
V0_KEY = "rag_81cf247b8e13_KEHBKjgb5shdBtTGarZHGUVPaU6eh-t2-8aXwIJVKbc"  # in api_keys_v0.sql
MANIFEST_STEPS = 6  # the manifest history's revisions: a release before Alembic reads the count


def restore(dump: str, path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((DATA / dump).read_text())
    conn.close()
    return path


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def alembic_revision(path: Path, store: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(f"SELECT version_num FROM alembic_version_{store}").fetchone()[0]
    finally:
        conn.close()


def test_manifest_of_the_previous_release_upgrades_in_place(tmp_path: Path) -> None:
    path = restore("manifest_v0.sql", tmp_path / "manifest.sqlite")
    assert user_version(path) == 0
    manifest = Manifest.at(path)
    try:
        indexed = manifest.get("notes/a.md")
        assert indexed is not None
        assert (indexed.status, indexed.chunk_ids, indexed.mtime) == (
            DocStatus.INDEXED,
            ["id-1", "id-2"],
            1700000000.5,
        )
        assert indexed.meta == {}  # the column migration 2 added, with its default
        assert indexed.deleted_by == ""  # migration 3's, empty for a document not deleted
        assert indexed.format_version == 1  # migration 6's: read by its format's first parser
        # Migration 4's chunk count, from the chunk ids: what scans compare with the index.
        assert manifest.object_states()["notes/a.md"].chunk_count == 2
        assert manifest.chunk_count() == 2
        failed = manifest.all("acme")["tenants/acme/bad.pdf"]
        assert (failed.status, failed.attempts) == (DocStatus.FAILED, 3)
        assert failed.error == "corrupt PDF: EOF marker not found"
        assert set(manifest.pending()) == {"notes/b.md"}
        last = manifest.last_run()
        # Migration 5's run counters, from each run's JSON summary.
        assert last is not None and (last.added, last.failed, last.finished_at) == (1, 1, 1.7e9 + 4)
        assert manifest.get_meta("last_scan") == {"listed": 3}
        indexed.meta = {"team": "search"}
        manifest.put(indexed)
        assert manifest.get("notes/a.md").meta == {"team": "search"}  # type: ignore[union-attr]
    finally:
        manifest.close()
    assert user_version(path) == MANIFEST_STEPS
    assert alembic_revision(path, "manifest") == head_of(MANIFEST.migrations)
    reopened = Manifest.at(path)  # an upgraded file opens without migrating again
    try:
        assert reopened.get("notes/a.md").meta == {"team": "search"}  # type: ignore[union-attr]
    finally:
        reopened.close()


def test_fresh_and_upgraded_manifests_hold_the_same_columns(tmp_path: Path) -> None:
    upgraded = restore("manifest_v0.sql", tmp_path / "old.sqlite")
    Manifest.at(upgraded).close()
    Manifest.at(tmp_path / "new.sqlite").close()

    def columns(path: Path) -> list[str]:
        conn = sqlite3.connect(path)
        try:
            return [row[1] for row in conn.execute("PRAGMA table_info(documents)")]
        finally:
            conn.close()

    assert columns(upgraded) == columns(tmp_path / "new.sqlite")
    assert {"meta", "deleted_by", "chunk_count"} <= set(columns(upgraded))


def test_documents_deleted_before_tombstones_read_as_deleted_by_the_bucket(
    tmp_path: Path,
) -> None:
    """Migration 3: a deleted record of an older release is no tombstone, so a scan that finds
    its object again indexes it, as that release did."""
    path = restore("manifest_v0.sql", tmp_path / "manifest.sqlite")
    conn = sqlite3.connect(path)
    conn.execute("UPDATE documents SET status = 'deleted' WHERE doc_id = 'notes/a.md'")
    conn.commit()
    conn.close()
    manifest = Manifest.at(path)
    try:
        record = manifest.get("notes/a.md")
        assert record is not None and (record.status, record.deleted_by) == ("deleted", "bucket")
        assert not record.tombstone
        assert manifest.get("tenants/acme/bad.pdf").deleted_by == ""  # type: ignore[union-attr]
    finally:
        manifest.close()


def test_key_store_of_the_previous_release_keeps_its_keys(tmp_path: Path) -> None:
    path = restore("api_keys_v0.sql", tmp_path / "api_keys.sqlite")
    store = key_store(path)
    try:
        principal = store.verify(V0_KEY)
        assert principal is not None and (principal.tenant_id, principal.role) == (
            "acme",
            "reader",
        )
        assert [k.label for k in store.list()] == ["ci reader"]
    finally:
        store.close()
    assert user_version(path) == 1  # what a release before Alembic reads, and refuses above
    assert alembic_revision(path, "keys") == "keys_0001"


def test_a_store_written_by_a_newer_release_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "manifest.sqlite"
    written = Manifest.at(path)
    written.put(DocumentRecord("a.txt", "default", "a.txt", DocStatus.INDEXED))
    written.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE alembic_version_manifest SET version_num = 'manifest_0099'")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer than this release knows"):
        Manifest.at(path)
    assert alembic_revision(path, "manifest") == "manifest_0099"


_OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from core.manifest import Manifest
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
Manifest.at(Path(sys.argv[1])).close()
"""


def test_processes_opening_an_old_manifest_at_once_upgrade_it_once(tmp_path: Path) -> None:
    """The API and a worker starting together on an old data dir: each step applies once."""
    path = restore("manifest_v0.sql", tmp_path / "manifest.sqlite")
    go = tmp_path / "go"
    root = Path(__file__).resolve().parent.parent
    openers = [
        subprocess.Popen([sys.executable, "-c", _OPEN_WHEN_TOLD, str(path), str(go)], cwd=root)
        for _ in range(6)
    ]
    time.sleep(2)  # all of them imported and waiting
    go.touch()
    assert [p.wait(60) for p in openers] == [0] * 6
    assert user_version(path) == MANIFEST_STEPS


# What the release before Alembic applied to a v0 file as its migrations 2 to 4.
_RELEASE_STEPS = """
ALTER TABLE documents ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
ALTER TABLE documents ADD COLUMN deleted_by TEXT NOT NULL DEFAULT '';
ALTER TABLE documents ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 0;
UPDATE documents SET chunk_count = json_array_length(chunk_ids);
CREATE INDEX documents_state ON documents (
    doc_id, source, status, size, mtime, etag, sidecar, deleted_by, chunk_count
);
PRAGMA user_version = 4;
"""


def test_a_manifest_of_the_release_before_alembic_is_adopted_at_its_version(
    tmp_path: Path,
) -> None:
    """Its `user_version` 4 stands for revision manifest_0004: only the namespaces and run
    counters are added, and every record lands in the served namespace."""
    path = restore("manifest_v0.sql", tmp_path / "manifest.sqlite")
    conn = sqlite3.connect(path)
    conn.executescript(_RELEASE_STEPS)
    conn.close()
    manifest = Manifest.at(path)
    try:
        assert manifest.object_states()["notes/a.md"].chunk_count == 2
        assert set(manifest.all()) == {"notes/a.md", "tenants/acme/bad.pdf"}
        last = manifest.last_run()
        assert last is not None and (last.added, last.failed) == (1, 1)
        manifest.add_outcome(manifest.record_run(RunSummary(planned=1)), "added")
        assert manifest.last_run().completed == 1  # type: ignore[union-attr]
    finally:
        manifest.close()
    assert user_version(path) == MANIFEST_STEPS
