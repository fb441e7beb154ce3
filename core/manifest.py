"""What the platform believes about each document in the bucket, durably.

A document moves through `queued -> processing -> indexed | failed`, and to `deleted` when it
leaves the bucket or an admin deletes it through the API (`deleted_by` says which). An API delete
of an object still in the bucket is a tombstone: scans and syncs leave that object out of the index
while its content is unchanged, and index it again once it changes. The manifest is a cache of
that state for cheap scans and for status; the index stays the truth for which chunks exist, so
a lost manifest row costs a re-sync, never a duplicate.

`documents` holds each document's settled state, written by the syncer; work in flight (queued,
processing) lives in `pending` beside it, so a queued document keeps its settled record and the
syncer's "same bytes, nothing to do" check still applies when its task runs. Status reads both.

The schema is versioned (`MIGRATIONS`, applied by `core.sqlite`): a field added to a record is a
new migration, and rows are written and read by column name, never by position.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path

from core.sqlite import Migration, SqliteStore
from core.types import TenantScope, is_tenant_id

# The tenant recorded for a document whose key names no valid tenant (`tenants/ac.me/x.txt`):
# it is quarantined, belongs to no tenant, and no tenant's count, scope or graph includes it.
NO_TENANT = ""


class DocStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    INDEXED = "indexed"
    FAILED = "failed"
    DELETED = "deleted"


class DeletedBy(StrEnum):
    """Why a record is `deleted`."""

    BUCKET = "bucket"  # the object left the bucket
    API = "api"  # an admin deleted it through the API: a tombstone while the object stays


class _ObjectFacts:
    """What a record says of the object it was written from; `DocumentRecord` and `ObjectState`
    both have these fields."""

    __slots__ = ()
    status: DocStatus
    size: int
    mtime: float
    etag: str
    sidecar: str
    deleted_by: str

    @property
    def tombstone(self) -> bool:
        """Deleted through the API while the object stayed in the bucket."""
        return self.status == DocStatus.DELETED and self.deleted_by == DeletedBy.API

    def same_object(self, size: int, mtime: float, etag: str, sidecar: str) -> bool:
        """True when the bucket listing shows nothing changed since this record was written."""
        return (self.size, self.mtime, self.etag, self.sidecar) == (size, mtime, etag, sidecar)


@dataclass
class DocumentRecord(_ObjectFacts):
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
    # Document-level metadata (the parser's and the sidecar's), kept once here rather than in
    # every chunk's payload, which carries only the keys small enough to filter on.
    meta: dict = field(default_factory=dict)
    deleted_by: str = ""  # a `DeletedBy` when the status is deleted, else ""

    @property
    def scope(self) -> TenantScope | None:
        """The tenant the document belongs to, or None: its key names no valid tenant (NO_TENANT,
        or a tenant such as "acme\\n" that a release before whole-name matching took from the
        folder). Whoever turns a record into a scope asks here, so no such record fails a scan,
        a rebuild or a switch."""
        return TenantScope(self.tenant_id) if is_tenant_id(self.tenant_id) else None


@dataclass(slots=True)
class ObjectState(_ObjectFacts):
    """A document's record as a scan compares it with the bucket's listing: without its chunk
    ids and metadata, which a scan never needs (a scan every 30 s of 100k documents of 10 chunks
    read some 38 MB of chunk ids), only how many chunks it has."""

    doc_id: str
    source: str
    status: DocStatus
    size: int
    mtime: float
    etag: str
    sidecar: str
    deleted_by: str
    chunk_count: int


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
    # Worker runs: documents a scan enqueued, and how many of their tasks have reported back.
    planned: int = 0
    completed: int = 0

    @property
    def seconds(self) -> float:
        return (self.finished_at or time.time()) - self.started_at


@dataclass
class PendingWork:
    """A document with a task queued or running; `attempts` counts runs started on it."""

    doc_id: str
    tenant_id: str
    status: DocStatus
    task_id: str
    since: float
    attempts: int = 0
    error: str = ""


_COLUMNS = [f.name for f in fields(DocumentRecord)]
_JSON_COLUMNS = ("chunk_ids", "meta")
_STATE_COLUMNS = [f.name for f in fields(ObjectState)]
_PENDING_COLUMNS = [f.name for f in fields(PendingWork)]

# The manifest's schema, one step per release that changed it. Version 1 is the schema of the
# releases before versioning, so their files are adopted as they are and then upgraded.
MIGRATIONS = [
    Migration(
        1,
        "documents, runs, pending work and scan facts",
        """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, tenant_id, source, status, size, mtime, etag, sidecar,
    content_hash, meta_hash, chunk_ids, error, attempts, updated_at
);
CREATE INDEX IF NOT EXISTS documents_tenant ON documents (tenant_id, status);
CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY AUTOINCREMENT, summary TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    doc_id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, status TEXT NOT NULL, task_id TEXT NOT NULL,
    since REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""",
    ),
    Migration(
        2,
        "document-level metadata, stored once per document",
        "ALTER TABLE documents ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';",
    ),
    Migration(
        3,
        "who deleted a document: the bucket, or an admin through the API (a tombstone)",
        """
ALTER TABLE documents ADD COLUMN deleted_by TEXT NOT NULL DEFAULT '';
UPDATE documents SET deleted_by = 'bucket' WHERE status = 'deleted';
""",
    ),
    Migration(
        4,
        "each document's chunk count beside its chunk ids, for scans that read no chunk ids",
        """
ALTER TABLE documents ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 0;
UPDATE documents SET chunk_count = json_array_length(chunk_ids);
CREATE INDEX documents_state ON documents (
    doc_id, source, status, size, mtime, etag, sidecar, deleted_by, chunk_count
);
""",
    ),
]


def _row(record: DocumentRecord) -> dict:
    values = asdict(record)
    for column in _JSON_COLUMNS:
        values[column] = json.dumps(values[column])
    values["status"] = str(record.status)
    values["chunk_count"] = len(record.chunk_ids)
    return values


def _record(row: tuple) -> DocumentRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column])
    values["status"] = DocStatus(values["status"])
    return DocumentRecord(**values)


_INSERT_DOCUMENT = (
    f"INSERT OR REPLACE INTO documents ({', '.join(_COLUMNS)}, chunk_count) "
    f"VALUES ({', '.join(':' + c for c in _COLUMNS)}, :chunk_count)"
)


class Manifest(SqliteStore):
    """Document records and run summaries in one SQLite file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, MIGRATIONS)

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

    def object_states(self) -> dict[str, ObjectState]:
        """Every document's `ObjectState`: what a scan reads, in memory and time independent of
        how many chunks the documents have."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {','.join(_STATE_COLUMNS)} FROM documents"
            ).fetchall()
        return {
            doc_id: ObjectState(doc_id, source, DocStatus(status), *rest)
            for doc_id, source, status, *rest in rows
        }

    def tenants(self) -> list[str]:
        """The tenants with a document that is not deleted (settled or in flight), sorted."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT tenant_id FROM documents WHERE status != ? "
                "UNION SELECT tenant_id FROM pending ORDER BY tenant_id",
                (DocStatus.DELETED.value,),
            ).fetchall()
        return [tenant for (tenant,) in rows if is_tenant_id(tenant)]

    def chunk_count(self, tenant_id: str | None = None) -> int:
        """Chunks the documents' records list (one tenant's, or every tenant's): what the index
        holds once the syncs in flight finish, since each writes its points, then its record (and
        a scan repairs any difference). Counted here, so status needs no lock on the index."""
        sql = "SELECT COALESCE(SUM(chunk_count), 0) FROM documents"
        args: tuple = ()
        if tenant_id is not None:
            sql, args = sql + " WHERE tenant_id = ?", (tenant_id,)
        with self._lock:
            return int(self._conn.execute(sql, args).fetchone()[0])

    def put(self, *records: DocumentRecord) -> None:
        with self.transaction() as conn:
            conn.executemany(_INSERT_DOCUMENT, [_row(r) for r in records])

    def replace_documents(self, records: dict[str, DocumentRecord], meta: dict[str, dict]) -> None:
        """Every settled record at once, with meta facts about them: a rebuild's switch."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM documents")
            conn.executemany(_INSERT_DOCUMENT, [_row(r) for r in records.values()])
            conn.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(k, json.dumps(v)) for k, v in meta.items()],
            )

    def mark_deleted(self, record: DocumentRecord, by: DeletedBy) -> DocumentRecord:
        """Keep the record, marked deleted and without chunks, so status can still show it.

        Its stat data and content hash stay: for a tombstone they are the version deleted.
        """
        record.status, record.chunk_ids, record.error = DocStatus.DELETED, [], ""
        record.deleted_by = by.value
        record.updated_at = time.time()
        self.put(record)
        return record

    def current(self, tenant_id: str | None = None) -> dict[str, DocumentRecord]:
        """Each document's record as status shows it: in-flight work overrides the settled state.

        A document that is new to the manifest and already queued appears with its pending state
        only; attempts and the last transient error come from the pending work.
        """
        records = self.all(tenant_id)
        for work in self.pending(tenant_id).values():
            record = records.get(work.doc_id) or DocumentRecord(
                work.doc_id, work.tenant_id, work.doc_id, work.status
            )
            record.status, record.attempts = work.status, work.attempts
            record.error = work.error or record.error
            record.updated_at = work.since
            records[work.doc_id] = record
        return records

    # --- work in flight, written by the scan and the workers

    def pending(self, tenant_id: str | None = None) -> dict[str, PendingWork]:
        sql = f"SELECT {','.join(_PENDING_COLUMNS)} FROM pending"
        args: tuple = ()
        if tenant_id is not None:
            sql, args = sql + " WHERE tenant_id = ?", (tenant_id,)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        works = [PendingWork(**dict(zip(_PENDING_COLUMNS, r, strict=True))) for r in rows]
        for work in works:
            work.status = DocStatus(work.status)
        return {w.doc_id: w for w in works}

    def mark_queued(self, tasks: dict[str, tuple[str, str]]) -> None:
        """Record `{doc_id: (tenant_id, task_id)}` as queued; attempts so far are kept."""
        now = time.time()
        rows = [(d, t, DocStatus.QUEUED.value, task, now) for d, (t, task) in tasks.items()]
        with self.transaction() as conn:
            conn.executemany(
                "INSERT INTO pending (doc_id, tenant_id, status, task_id, since) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (doc_id) DO UPDATE SET "
                "status = excluded.status, task_id = excluded.task_id, since = excluded.since",
                rows,
            )

    def mark_processing(self, doc_id: str, tenant_id: str, task_id: str) -> PendingWork:
        """A task starts on the document: one more attempt, returned with the last error."""
        with self._lock:
            attempts, error = self._conn.execute(
                "INSERT INTO pending (doc_id, tenant_id, status, task_id, since, attempts) "
                "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (doc_id) DO UPDATE SET "
                "status = excluded.status, task_id = excluded.task_id, since = excluded.since, "
                "attempts = pending.attempts + 1 RETURNING attempts, error",
                (doc_id, tenant_id, DocStatus.PROCESSING.value, task_id, time.time()),
            ).fetchone()
        return PendingWork(
            doc_id, tenant_id, DocStatus.PROCESSING, task_id, time.time(), attempts, error
        )

    def note_error(self, doc_id: str, error: str) -> None:
        """Keep a transient failure's reason for status while the document waits for a retry."""
        with self._lock:
            self._conn.execute("UPDATE pending SET error = ? WHERE doc_id = ?", (error, doc_id))

    def drop_pending(self, doc_ids: list[str]) -> None:
        """Forget in-flight marks that no task will ever clear (their messages were lost)."""
        with self.transaction() as conn:
            conn.executemany("DELETE FROM pending WHERE doc_id = ?", [(d,) for d in doc_ids])

    def finish(self, doc_id: str, task_id: str) -> None:
        """The task settled the document. A newer task queued meanwhile keeps its entry, but the
        attempts of the version just settled no longer count against it."""
        with self.transaction() as conn:
            gone = conn.execute(
                "DELETE FROM pending WHERE doc_id = ? AND task_id = ?", (doc_id, task_id)
            ).rowcount
            if not gone:
                conn.execute(
                    "UPDATE pending SET attempts = 0, error = '' WHERE doc_id = ?", (doc_id,)
                )

    def record_run(self, summary: RunSummary) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT INTO runs (summary) VALUES (?)", (json.dumps(asdict(summary)),)
            )

    def last_run(self) -> RunSummary | None:
        with self._lock:
            row = self._conn.execute("SELECT summary FROM runs ORDER BY id DESC LIMIT 1").fetchone()
        return RunSummary(**json.loads(row[0])) if row else None

    def start_run(self, summary: RunSummary) -> int:
        """A run whose outcomes arrive later, one task at a time; returns its id."""
        with self._lock:
            cursor = self._conn.execute(
                "INSERT INTO runs (summary) VALUES (?)", (json.dumps(asdict(summary)),)
            )
        return int(cursor.lastrowid or 0)

    def add_outcome(self, run_id: int, kind: str, chunks_embedded: int = 0) -> None:
        """Count one task's outcome (a `RunSummary` counter name) into its run."""
        with self.transaction() as conn:
            row = conn.execute("SELECT summary FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is not None:
                summary = RunSummary(**json.loads(row[0]))
                setattr(summary, kind, getattr(summary, kind) + 1)
                summary.chunks_embedded += chunks_embedded
                summary.completed += 1
                if summary.completed >= summary.planned:
                    summary.finished_at = time.time()
                conn.execute(
                    "UPDATE runs SET summary = ? WHERE id = ?",
                    (json.dumps(asdict(summary)), run_id),
                )

    def set_meta(self, key: str, value: dict) -> None:
        """Small JSON facts beside the documents, e.g. what the last scan found."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def update_meta(self, key: str, change: Callable[[dict | None], dict]) -> dict:
        """Read, change and write one fact in one transaction, so two writers never lose one."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            value = change(json.loads(row[0]) if row else None)
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        return value

    def delete_meta(self, key: str) -> None:
        """Forget a fact that no longer holds (a rebuild of a configuration since reverted)."""
        with self._lock:
            self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))

    def get_meta(self, key: str) -> dict | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None
