"""Bring the index in line with a batch of bucket objects, touching only what changed.

Per document: an unchanged content hash costs a hash and nothing else; a changed one is parsed and
chunked, only chunk hashes never seen before reach the model (the rest come from the embedding
cache), new points are upserted, and then every point the index still holds for the document but
the new version lacks is deleted. Diffing against the index, not the manifest, is what lets a sync
clean up after a crashed predecessor.

A document deleted through the API while its object stays in the bucket (`tombstone`) is left out
of the index for as long as its content is unchanged; whoever syncs it (a scan, a worker's task,
`rag ingest`) finds the tombstone and keeps it. New content indexes it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from core.embedding import CachedEmbedder
from core.index import ChunkIndex
from core.listeners import DocumentListener
from core.manifest import NO_TENANT, DeletedBy, DocStatus, DocumentRecord, Manifest
from core.types import IndexedChunk, TenantScope
from ingest.bucket import (
    Bucket,
    ObjectInfo,
    ObjectTooLargeError,
    UnsafeKeyError,
    check_key,
    sha256,
    sidecar_for,
)
from ingest.documents import DocumentBuilder, DocumentError, PreparedDocument, tenant_of
from ingest.formats import format_version

OutcomeKind = Literal["added", "modified", "unchanged", "failed", "deleted"]


@dataclass
class SyncOutcome:
    doc_id: str
    kind: OutcomeKind
    chunks: int = 0
    error: str = ""
    # Of its chunks, those this sync sent to the model (the rest came from the embedding cache):
    # counted per document because workers that share the model cannot count it for a task.
    chunks_embedded: int = 0


@dataclass
class _Pending:
    """A document read and hashed, waiting in the batch to be embedded and written."""

    obj: ObjectInfo
    sidecar: ObjectInfo | None
    record: DocumentRecord | None
    doc: PreparedDocument
    outcome: SyncOutcome = field(init=False)


class DocumentSyncer:
    """Syncs documents in batches so the model sees large, efficient embedding batches."""

    def __init__(
        self,
        bucket: Bucket,
        index: ChunkIndex,
        manifest: Manifest,
        embedder: CachedEmbedder,
        builder: DocumentBuilder,
        max_file_bytes: int,
        default_tenant: str,
        listeners: Sequence[DocumentListener] = (),
    ) -> None:
        self.bucket = bucket
        self._index = index
        self._manifest = manifest
        self._embedder = embedder
        self._builder = builder
        self._max_bytes = max_file_bytes
        self._default_tenant = default_tenant
        self._listeners = list(listeners)

    def sync(
        self, objects: Sequence[ObjectInfo], sidecars: dict[str, ObjectInfo]
    ) -> list[SyncOutcome]:
        """Sync documents given their listing entries and the sidecars listed beside them."""
        outcomes: list[SyncOutcome] = []
        pending: list[_Pending] = []
        for obj in objects:
            sidecar = sidecars.get(sidecar_for(obj.key))
            result = self._prepare(obj, sidecar)
            (pending if isinstance(result, _Pending) else outcomes).append(result)
        if pending:
            self._write(pending)
            outcomes += [p.outcome for p in pending]
        return outcomes

    def delete(self, doc_id: str) -> SyncOutcome:
        """Remove a document that left the bucket: its points, then its record."""
        record = self._manifest.get(doc_id)
        self._remove(doc_id)
        if record is not None:
            self._manifest.mark_deleted(record, DeletedBy.BUCKET)
        return SyncOutcome(doc_id, "deleted")

    def tombstone(self, doc_id: str) -> DocumentRecord | None:
        """Delete a document the bucket still holds (an admin's API delete); None if unknown.

        The caller holds the document's lock. The tombstone is written first: should the process
        die before the points are gone, the next scan finds points the record disowns and this
        syncer removes them, rather than bringing the document back. The record keeps the stat
        data and content hash of the version deleted, which is what the tombstone stands for.
        """
        record = self._manifest.get(doc_id)
        if record is None:
            return None
        self._manifest.mark_deleted(record, DeletedBy.API)
        self._remove(doc_id)
        return record

    def _remove(self, doc_id: str) -> TenantScope | None:
        """Delete every point of a document and tell the listeners; its tenant, if the key has one.

        A key whose tenant folder is not a tenant id belongs to no tenant and never had points,
        so there is nothing to remove.
        """
        try:
            scope = tenant_of(doc_id, self._default_tenant)
        except DocumentError:
            return None
        self._index.delete_document(scope, doc_id)
        for listener in self._listeners:
            listener.on_deleted(scope, doc_id)
        return scope

    def _prepare(self, obj: ObjectInfo, sidecar: ObjectInfo | None) -> _Pending | SyncOutcome:
        record = self._manifest.get(obj.key)
        sidecar_sig = sidecar.signature if sidecar else ""
        attempts = (record.attempts if record else 0) + 1
        if obj.problem:
            return self.quarantine(obj, sidecar_sig, obj.problem, attempts)
        try:
            check_key(obj.key)
            data = self.bucket.read(obj.key, self._max_bytes)
            content_hash = sha256(data)
            if record is not None and self._still_tombstoned(record, obj, content_hash):
                if record.scope and self._index.chunk_ids(record.scope, record.doc_id):
                    self._remove(record.doc_id)  # left by a delete that died half-way
                self._touch(record, obj, sidecar_sig)
                return SyncOutcome(obj.key, "unchanged")
            meta = self._read_sidecar(sidecar) if sidecar else None
            meta_hash = sha256(meta) if meta is not None else ""
            if self._still_indexed(record, content_hash, meta_hash):
                self._touch(record, obj, sidecar_sig)
                return SyncOutcome(obj.key, "unchanged", len(record.chunk_ids))
            doc = self._builder.build(obj, self.bucket.uri(obj.key), data, content_hash, meta)
        except (DocumentError, ObjectTooLargeError, UnsafeKeyError, OSError) as exc:
            reason = getattr(exc, "reason", None) or str(exc)
            return self.quarantine(obj, sidecar_sig, reason, attempts)
        return _Pending(obj, sidecar, record, doc)

    def _read_sidecar(self, sidecar: ObjectInfo) -> bytes:
        """Read no more of a sidecar than its limit allows; over it, the document is refused."""
        limit = self._builder.meta_limits.max_sidecar_bytes
        try:
            return self.bucket.read(sidecar.key, limit)
        except ObjectTooLargeError:
            raise DocumentError(
                f"sidecar metadata is over the limit of {limit} bytes (RAG_MAX_SIDECAR_BYTES)"
            ) from None

    def _write(self, pending: list[_Pending]) -> None:
        hashes = [c.hash for p in pending for c in p.doc.chunks]
        texts = [c.text for p in pending for c in p.doc.chunks]
        found, missed = self._embedder.embed_chunks(hashes, texts)
        vectors = iter(found)
        points = [
            IndexedChunk(p.doc.point_id(c), next(vectors), p.doc.payload(c))
            for p in pending
            for c in p.doc.chunks
        ]
        self._index.upsert(points)
        records = []
        for p in pending:
            new_ids = [p.doc.point_id(c) for c in p.doc.chunks]
            stale = self._index.chunk_ids(p.doc.scope, p.doc.doc_id) - set(new_ids)
            self._index.delete(sorted(stale))
            for listener in self._listeners:
                listener.on_indexed(p.doc, new_ids)
            # A text the batch shares was embedded once: it counts for the first document only.
            embedded = missed.intersection(c.hash for c in p.doc.chunks)
            missed -= embedded
            replaced = p.record is not None and bool(p.record.chunk_ids)
            p.outcome = SyncOutcome(
                p.obj.key,
                "modified" if replaced else "added",
                len(new_ids),
                chunks_embedded=len(embedded),
            )
            records.append(
                DocumentRecord(
                    doc_id=p.doc.doc_id,
                    tenant_id=p.doc.scope.tenant_id,
                    source=p.doc.base_payload["source"],
                    status=DocStatus.INDEXED,
                    size=p.obj.size,
                    mtime=p.obj.mtime,
                    etag=p.obj.etag,
                    sidecar=p.sidecar.signature if p.sidecar else "",
                    content_hash=p.doc.content_hash,
                    meta_hash=p.doc.meta_hash,
                    chunk_ids=new_ids,
                    meta=p.doc.meta,
                    format_version=format_version(p.obj.key),
                )
            )
        self._manifest.put(*records)

    def _still_indexed(
        self, record: DocumentRecord | None, content_hash: str, meta_hash: str
    ) -> bool:
        """Same bytes, same sidecar, same name, read by its format's parser as it is now, and the
        index holds exactly the recorded chunks.

        The last checks let a scan that noticed missing or extra points, or a source named as an
        older version named documents, repair them: the document is rebuilt from the embedding
        cache, costing no model calls.
        """
        return (
            record is not None
            and record.status == DocStatus.INDEXED
            and record.scope is not None
            and (record.content_hash, record.meta_hash) == (content_hash, meta_hash)
            and record.source == self.bucket.uri(record.doc_id)
            and record.format_version == format_version(record.doc_id)
            and self._index.chunk_ids(record.scope, record.doc_id) == set(record.chunk_ids)
        )

    def _still_tombstoned(self, record: DocumentRecord, obj: ObjectInfo, content_hash: str) -> bool:
        """Deleted through the API, and the object holds the bytes deleted: the same content
        hash, or, for a document deleted while quarantined (it never had one), the same stat.

        The sidecar does not count: new metadata is not a new document.
        """
        if not record.tombstone:
            return False
        if record.content_hash:
            return record.content_hash == content_hash
        return record.same_object(obj.size, obj.mtime, obj.etag, record.sidecar)

    def _touch(self, record: DocumentRecord, obj: ObjectInfo, sidecar_sig: str) -> None:
        """Same content under new stat data (a `touch`, a copy): remember the new stat only."""
        if not record.same_object(obj.size, obj.mtime, obj.etag, sidecar_sig):
            record.size, record.mtime, record.etag, record.sidecar = (
                obj.size,
                obj.mtime,
                obj.etag,
                sidecar_sig,
            )
            self._manifest.put(record)

    def quarantine(
        self, obj: ObjectInfo, sidecar_sig: str, reason: str, attempts: int
    ) -> SyncOutcome:
        """Quarantine: no chunks of a document that failed stay searchable, and the reason is kept.

        The stat data is recorded so the same bytes are not retried on every scan; a new version
        of the object (new size, mtime or etag) is picked up again.
        """
        scope = self._remove(obj.key)
        self._manifest.put(
            DocumentRecord(
                doc_id=obj.key,
                tenant_id=scope.tenant_id if scope else NO_TENANT,
                source=obj.key,
                status=DocStatus.FAILED,
                size=obj.size,
                mtime=obj.mtime,
                etag=obj.etag,
                sidecar=sidecar_sig,
                error=reason,
                attempts=attempts,
                format_version=format_version(obj.key),
            )
        )
        return SyncOutcome(obj.key, "failed", error=reason)
