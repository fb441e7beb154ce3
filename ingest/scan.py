"""Reconcile a bucket against the index: decide what to sync and what to delete, then do it.

The scan is the source of truth for convergence. It trusts no message and no earlier run: a
document is re-synced when the listing's stat data differs from the manifest, or when the index
does not hold the chunk count the manifest promises; a document is deleted when the manifest or
the index knows it and the bucket does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.index import ChunkIndex
from core.manifest import DocStatus, Manifest, RunSummary
from ingest.bucket import Bucket, ObjectInfo, is_sidecar, sidecar_for
from ingest.sync import DocumentSyncer, SyncOutcome


@dataclass
class ScanPlan:
    to_sync: list[ObjectInfo] = field(default_factory=list)
    to_delete: list[str] = field(default_factory=list)
    unchanged: int = 0
    sidecars: dict[str, ObjectInfo] = field(default_factory=dict)

    @property
    def total_work(self) -> int:
        return len(self.to_sync) + len(self.to_delete)


class BucketScanner:
    """Lists the bucket once and diffs it against the manifest and the index."""

    def __init__(self, bucket: Bucket, manifest: Manifest, index: ChunkIndex) -> None:
        self._bucket = bucket
        self._manifest = manifest
        self._index = index

    def plan(self) -> ScanPlan:
        plan = ScanPlan()
        documents: list[ObjectInfo] = []
        for obj in self._bucket.list():
            if is_sidecar(obj.key):
                plan.sidecars[obj.key] = obj
            else:
                documents.append(obj)
        records = self._manifest.all()
        indexed = self._index.document_ids()
        for obj in documents:
            record = records.get(obj.key)
            sidecar = plan.sidecars.get(sidecar_for(obj.key))
            settled = (
                record is not None
                and record.same_object(
                    obj.size, obj.mtime, obj.etag, sidecar.signature if sidecar else ""
                )
                and (
                    record.status == DocStatus.FAILED
                    or (
                        record.status == DocStatus.INDEXED
                        and indexed.get(obj.key, 0) == len(record.chunk_ids)
                    )
                )
            )
            if settled:
                plan.unchanged += 1
            else:
                plan.to_sync.append(obj)
        present = {obj.key for obj in documents}
        known = {d for d, r in records.items() if r.status != DocStatus.DELETED} | set(indexed)
        plan.to_delete = sorted(known - present)
        return plan


Progress = Callable[[int], None]


def execute(
    plan: ScanPlan,
    syncer: DocumentSyncer,
    batch_docs: int,
    progress: Progress | None = None,
) -> RunSummary:
    """Carry out a plan in batches; one bad document never stops the others."""
    summary = RunSummary(unchanged=plan.unchanged)
    embedded_before = syncer.embedded_count

    def count(outcomes: Iterable[SyncOutcome]) -> None:
        n = 0
        for o in outcomes:
            setattr(summary, o.kind, getattr(summary, o.kind) + 1)
            n += 1
        if progress:
            progress(n)

    for start in range(0, len(plan.to_sync), batch_docs):
        batch = plan.to_sync[start : start + batch_docs]
        count(syncer.sync(batch, plan.sidecars))
    for doc_id in plan.to_delete:
        count([syncer.delete(doc_id)])
    summary.chunks_embedded = syncer.embedded_count - embedded_before
    summary.finished_at = time.time()
    return summary
