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

The manifest is a store of the state database (core/state): a SQLite file in the data dir by
default, or tables of the one PostgreSQL database that every host shares. Its schema is an
Alembic history (core/state/migrations/manifest): a field added to a record is a new revision,
and rows are written and read by column name, never by position. Document records live in
namespaces: "" holds the served index's, and a generation being built keeps its own in
`generation:<fingerprint id>`, so any host can resume that rebuild, and its switch replaces the
served records in one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Double,
    Engine,
    Integer,
    MetaData,
    Table,
    Text,
    case,
    delete,
    func,
    insert,
    select,
    union,
    update,
)

from core.settings import Settings, StateSettings
from core.state.database import (
    dialect_insert,
    engine_for,
    insert_new,
    reading,
    release,
    sqlite_url,
    store_engine,
    upsert,
    writing,
)
from core.state.stores import MANIFEST
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
    format_version: int

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
    # The version of its format's parser that read it (`ingest.formats`); 0: no parser did.
    format_version: int = 0

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
    format_version: int


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


SERVED = ""  # the namespace of the served index's records
_COLUMNS = [f.name for f in fields(DocumentRecord)]
_JSON_COLUMNS = ("chunk_ids", "meta")
_STATE_COLUMNS = [f.name for f in fields(ObjectState)]
_PENDING_COLUMNS = [f.name for f in fields(PendingWork)]
_RUN_FIELDS = [f.name for f in fields(RunSummary)]
_COUNTERS = ("added", "modified", "deleted", "unchanged", "failed")
# A status read back by a dict lookup: calling the enum took half of a scan's read of 100k states.
_STATUSES = {status.value: status for status in DocStatus}

_metadata = MetaData()
_DOCUMENTS = Table(
    "documents",
    _metadata,
    Column("namespace", Text, primary_key=True),
    Column("doc_id", Text, primary_key=True),
    *(Column(n, Text) for n in ("tenant_id", "source", "status")),
    Column("size", BigInteger),
    Column("mtime", Double),
    *(Column(n, Text) for n in ("etag", "sidecar", "content_hash", "meta_hash", "chunk_ids")),
    Column("error", Text),
    Column("attempts", Integer),
    Column("updated_at", Double),
    Column("meta", Text),
    Column("deleted_by", Text),
    Column("chunk_count", Integer),
    Column("format_version", Integer),
)
_PENDING = Table(
    "pending",
    _metadata,
    Column("doc_id", Text, primary_key=True),
    *(Column(n, Text) for n in ("tenant_id", "status", "task_id")),
    Column("since", Double),
    Column("attempts", Integer),
    Column("error", Text),
)
_RUNS = Table(
    "runs",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    *(Column(n, Integer) for n in (*_COUNTERS, "chunks_embedded")),
    Column("started_at", Double),
    Column("finished_at", Double),
    Column("planned", Integer),
    Column("completed", Integer),
)
_META = Table("meta", _metadata, Column("key", Text, primary_key=True), Column("value", Text))


def _row(namespace: str, record: DocumentRecord) -> dict[str, Any]:
    values = asdict(record)
    for column in _JSON_COLUMNS:
        values[column] = json.dumps(values[column])
    values["status"] = str(record.status)
    values["chunk_count"] = len(record.chunk_ids)
    values["namespace"] = namespace
    # A parser's message may quote the document's bytes; PostgreSQL stores no NUL in text.
    values["error"] = record.error.replace("\x00", "\ufffd")
    return values


def _record(row: Any) -> DocumentRecord:
    values = dict(zip(_COLUMNS, row, strict=True))
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column])
    values["status"] = _STATUSES[values["status"]]
    return DocumentRecord(**values)


def generation_namespace(fingerprint_id: str) -> str:
    """Where the records of the generation with this fingerprint are kept while it is built."""
    return f"generation:{fingerprint_id}"


class Manifest:
    """Document records of one namespace, with the work in flight, runs and facts beside them."""

    def __init__(self, engine: Engine, namespace: str = SERVED) -> None:
        self._engine = engine
        self.namespace = namespace
        self._documents = _DOCUMENTS.c.namespace == namespace

    @classmethod
    def open(cls, settings: Settings, namespace: str = SERVED) -> Manifest:
        """The deployment's manifest: `data_dir/manifest.sqlite`, or RAG_STATE_URL's database."""
        return cls(store_engine(settings, MANIFEST), namespace)

    @classmethod
    def at(cls, path: Path) -> Manifest:
        """The manifest in a SQLite file (a data dir's, or one a release before namespaces kept
        beside a generation's shard), upgraded to this release's schema first."""
        return cls(engine_for(sqlite_url(path), MANIFEST, StateSettings()))

    def get(self, doc_id: str) -> DocumentRecord | None:
        query = self._select_documents().where(_DOCUMENTS.c.doc_id == doc_id)
        with reading(self._engine) as conn:
            row = conn.execute(query).first()
        return _record(row) if row else None

    def all(self, tenant_id: str | None = None) -> dict[str, DocumentRecord]:
        query = self._select_documents()
        if tenant_id is not None:
            query = query.where(_DOCUMENTS.c.tenant_id == tenant_id)
        with reading(self._engine) as conn:
            return {r.doc_id: r for r in map(_record, conn.execute(query))}

    def _select_documents(self) -> Any:
        return select(*(_DOCUMENTS.c[c] for c in _COLUMNS)).where(self._documents)

    def object_states(self) -> dict[str, ObjectState]:
        """Every document's `ObjectState`: what a scan reads, in memory and time independent of
        how many chunks the documents have."""
        query = select(*(_DOCUMENTS.c[c] for c in _STATE_COLUMNS)).where(self._documents)
        with reading(self._engine) as conn:
            return {
                doc_id: ObjectState(doc_id, source, _STATUSES[status], *rest)
                for doc_id, source, status, *rest in conn.execute(query)
            }

    def tenants(self) -> list[str]:
        """The tenants with a document that is not deleted (settled or in flight), sorted."""
        documents = _DOCUMENTS.c
        settled = select(documents.tenant_id).where(
            self._documents, documents.status != DocStatus.DELETED.value
        )
        query = union(settled, select(_PENDING.c.tenant_id)).order_by("tenant_id")
        with reading(self._engine) as conn:
            return [tenant for (tenant,) in conn.execute(query) if is_tenant_id(tenant)]

    def chunk_count(self, tenant_id: str | None = None) -> int:
        """Chunks the documents' records list (one tenant's, or every tenant's): what the index
        holds once the syncs in flight finish, since each writes its points, then its record (and
        a scan repairs any difference). Counted here, so status needs no lock on the index."""
        query = select(func.coalesce(func.sum(_DOCUMENTS.c.chunk_count), 0)).where(self._documents)
        if tenant_id is not None:
            query = query.where(_DOCUMENTS.c.tenant_id == tenant_id)
        with reading(self._engine) as conn:
            return int(conn.execute(query).scalar_one())

    def put(self, *records: DocumentRecord) -> None:
        with self._engine.begin() as conn:
            upsert(conn, _DOCUMENTS, [_row(self.namespace, r) for r in records])

    def take_documents(self, built: Manifest, meta: dict[str, dict]) -> None:
        """A rebuild's switch: the records `built` holds (a generation's namespace) become this
        namespace's, replacing all of them, with meta facts about them, in one transaction."""
        with writing(self._engine) as conn:
            conn.execute(delete(_DOCUMENTS).where(self._documents))
            conn.execute(
                update(_DOCUMENTS).where(built._documents).values(namespace=self.namespace)
            )
            _put_meta(conn, meta)

    def drop_other_generations(self, keep: str) -> None:
        """Forget the records of every generation's namespace but `keep`'s (half-built
        generations of configurations no longer wanted)."""
        namespace = _DOCUMENTS.c.namespace
        with self._engine.begin() as conn:
            conn.execute(delete(_DOCUMENTS).where(namespace != SERVED, namespace != keep))

    def is_empty(self) -> bool:
        query = select(_DOCUMENTS.c.doc_id).where(self._documents).limit(1)
        with reading(self._engine) as conn:
            return conn.execute(query).first() is None

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
        query = select(*(_PENDING.c[c] for c in _PENDING_COLUMNS))
        if tenant_id is not None:
            query = query.where(_PENDING.c.tenant_id == tenant_id)
        with reading(self._engine) as conn:
            works = [PendingWork(*row) for row in conn.execute(query)]
        for work in works:
            work.status = _STATUSES[work.status]
        return {w.doc_id: w for w in works}

    def mark_queued(self, tasks: dict[str, tuple[str, str]]) -> None:
        """Record `{doc_id: (tenant_id, task_id)}` as queued; attempts so far are kept."""
        now = time.time()
        rows = [
            {
                "doc_id": doc_id,
                "tenant_id": tenant,
                "status": DocStatus.QUEUED.value,
                "task_id": task,
                "since": now,
                "attempts": 0,
                "error": "",
            }
            for doc_id, (tenant, task) in tasks.items()
        ]
        if not rows:
            return
        with self._engine.begin() as conn:
            queued = dialect_insert(conn, _PENDING)
            conn.execute(
                queued.on_conflict_do_update(
                    index_elements=["doc_id"],
                    set_={c: queued.excluded[c] for c in ("status", "task_id", "since")},
                ),
                rows,
            )

    def mark_processing(self, doc_id: str, tenant_id: str, task_id: str) -> PendingWork:
        """A task starts on the document: one more attempt, returned with the last error."""
        now = time.time()
        with self._engine.begin() as conn:
            started = dialect_insert(conn, _PENDING).values(
                doc_id=doc_id,
                tenant_id=tenant_id,
                status=DocStatus.PROCESSING.value,
                task_id=task_id,
                since=now,
                attempts=1,
                error="",
            )
            attempts, error = conn.execute(
                started.on_conflict_do_update(
                    index_elements=["doc_id"],
                    set_={
                        **{c: started.excluded[c] for c in ("status", "task_id", "since")},
                        "attempts": _PENDING.c.attempts + 1,
                    },
                ).returning(_PENDING.c.attempts, _PENDING.c.error)
            ).one()
        return PendingWork(doc_id, tenant_id, DocStatus.PROCESSING, task_id, now, attempts, error)

    def note_error(self, doc_id: str, error: str) -> None:
        """Keep a transient failure's reason for status while the document waits for a retry."""
        error = error.replace("\x00", "\ufffd")  # as a settled record's
        with self._engine.begin() as conn:
            conn.execute(update(_PENDING).where(_PENDING.c.doc_id == doc_id).values(error=error))

    def drop_pending(self, doc_ids: list[str]) -> None:
        """Forget in-flight marks that no task will ever clear (their messages were lost)."""
        with self._engine.begin() as conn:
            conn.execute(delete(_PENDING).where(_PENDING.c.doc_id.in_(doc_ids)))

    def finish(self, doc_id: str, task_id: str) -> None:
        """The task settled the document. A newer task queued meanwhile keeps its entry, but the
        attempts of the version just settled no longer count against it."""
        pending = _PENDING.c
        with self._engine.begin() as conn:
            gone = conn.execute(
                delete(_PENDING).where(pending.doc_id == doc_id, pending.task_id == task_id)
            ).rowcount
            if not gone:
                conn.execute(
                    update(_PENDING).where(pending.doc_id == doc_id).values(attempts=0, error="")
                )

    # --- runs: one per scan or ingest, counted as its tasks report back

    def record_run(self, summary: RunSummary) -> int:
        """A run, finished or with outcomes to come one task at a time (`add_outcome`); its id."""
        with self._engine.begin() as conn:
            return int(conn.execute(insert(_RUNS).values(asdict(summary))).inserted_primary_key[0])

    def last_run(self) -> RunSummary | None:
        query = select(*(_RUNS.c[c] for c in _RUN_FIELDS)).order_by(_RUNS.c.id.desc()).limit(1)
        with reading(self._engine) as conn:
            row = conn.execute(query).first()
        return RunSummary(*row) if row else None

    def add_outcome(self, run_id: int, kind: str, chunks_embedded: int = 0) -> None:
        """Count one task's outcome (a `RunSummary` counter name) into its run, in one statement,
        so tasks reporting at once on several hosts never lose each other's counts."""
        if kind not in _COUNTERS:
            raise ValueError(f"not a run outcome: {kind!r}")
        runs = _RUNS.c
        with self._engine.begin() as conn:
            conn.execute(
                update(_RUNS)
                .where(runs.id == run_id)
                .values(
                    {
                        runs[kind]: runs[kind] + 1,
                        runs.chunks_embedded: runs.chunks_embedded + chunks_embedded,
                        runs.completed: runs.completed + 1,
                        runs.finished_at: case(
                            (runs.completed + 1 >= runs.planned, time.time()),
                            else_=runs.finished_at,
                        ),
                    }
                )
            )

    # --- facts beside the documents

    def set_meta(self, key: str, value: dict) -> None:
        """Small JSON facts beside the documents, e.g. what the last scan found."""
        with self._engine.begin() as conn:
            _put_meta(conn, {key: value})

    def update_meta(self, key: str, change: Callable[[dict | None], dict]) -> dict:
        """Read, change and write one fact under its row's lock, so two writers never lose one.
        A fact not there yet is made first (as JSON null, which reads as absent): a lock taken on
        no row would let two first writers both insert."""
        query = select(_META.c.value).where(_META.c.key == key).with_for_update()
        with writing(self._engine) as conn:
            insert_new(conn, _META, [{"key": key, "value": "null"}])
            value = change(json.loads(conn.execute(query).scalar_one()))
            _put_meta(conn, {key: value})
        return value

    def delete_meta(self, key: str) -> None:
        """Forget a fact that no longer holds (a rebuild of a configuration since reverted)."""
        with self._engine.begin() as conn:
            conn.execute(delete(_META).where(_META.c.key == key))

    def get_meta(self, key: str) -> dict | None:
        with reading(self._engine) as conn:
            value = conn.execute(select(_META.c.value).where(_META.c.key == key)).scalar()
        return json.loads(value) if value is not None else None

    def close(self) -> None:
        release(self._engine)


def _put_meta(conn: Connection, facts: dict[str, dict]) -> None:
    upsert(conn, _META, [{"key": k, "value": json.dumps(v)} for k, v in facts.items()])
