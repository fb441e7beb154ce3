"""What the platform believes about each document in the bucket, durably.

A document moves through `queued -> processing -> indexed | failed`, and to `deleted` when it
leaves the bucket. The manifest is a cache of that state for cheap scans and for status; the index
stays the truth for which chunks exist, so a lost manifest row costs a re-sync, never a duplicate.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from core.sqlite import SqliteStore


class DocStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass
class DocumentRecord:
    doc_id: str
    tenant_id: str
    source: str
    status: DocStatus
    size: int = 0
    mtime: float = 0.0
    etag: str = ""
    sidecar: str = ""  # the sidecar's stat signature, "" when there is none
    content_hash: str = ""
    meta_hash: str = ""
    chunk_ids: list[str] = field(default_factory=list)
    error: str = ""
    attempts: int = 0
    updated_at: float = field(default_factory=time.time)

    def same_object(self, size: int, mtime: float, etag: str, sidecar: str) -> bool:
        """True when the bucket listing shows nothing changed since this record was written."""
        return (self.size, self.mtime, self.etag, self.sidecar) == (size, mtime, etag, sidecar)


@dataclass
class RunSummary:
    added: int = 0
    modified: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: int = 0
    chunks_embedded: int = 0
    started_at: float = field(default_factory=time.time)
    finished_at: float = 0.0

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at


_COLUMNS = [f.name for f in fields(DocumentRecord)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS documents (
    {", ".join(f"{c} {'TEXT PRIMARY KEY' if c == 'doc_id' else ''}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS documents_tenant ON documents (tenant_id, status);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, summary TEXT NOT NULL);
"""


def _row(record: DocumentRecord) -> tuple:
    values = asdict(record)
    values["chunk_ids"] = json.dumps(record.chunk_ids)
    values["status"] = str(record.status)
    return tuple(values[c] for c in _COLUMNS)


def _record(row: tuple) -> DocumentRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["chunk_ids"] = json.loads(values["chunk_ids"])
    values["status"] = DocStatus(values["status"])
    return DocumentRecord(**values)


class Manifest(SqliteStore):
    """Document records and run summaries in one SQLite file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _SCHEMA)

    def get(self, doc_id: str) -> DocumentRecord | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {','.join(_COLUMNS)} FROM documents WHERE doc_id = ?", (doc_id,)
            ).fetchone()
        return _record(row) if row else None

    def all(self, tenant_id: str | None = None) -> dict[str, DocumentRecord]:
        sql = f"SELECT {','.join(_COLUMNS)} FROM documents"
        args: tuple = ()
        if tenant_id is not None:
            sql, args = sql + " WHERE tenant_id = ?", (tenant_id,)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return {r.doc_id: r for r in map(_record, rows)}

    def put(self, *records: DocumentRecord) -> None:
        marks = ",".join("?" * len(_COLUMNS))
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                f"INSERT OR REPLACE INTO documents VALUES ({marks})", [_row(r) for r in records]
            )
            self._conn.execute("COMMIT")

    def status_counts(self, tenant_id: str | None = None) -> dict[str, int]:
        sql = "SELECT status, COUNT(*) FROM documents"
        args: tuple = ()
        if tenant_id is not None:
            sql, args = sql + " WHERE tenant_id = ?", (tenant_id,)
        with self._lock:
            return dict(self._conn.execute(sql + " GROUP BY status", args).fetchall())

    def record_run(self, summary: RunSummary) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO runs (summary) VALUES (?)", (json.dumps(asdict(summary)),)
            )

    def last_run(self) -> RunSummary | None:
        with self._lock:
            row = self._conn.execute("SELECT summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return RunSummary(**json.loads(row[0])) if row else None
