"""Reconcile a bucket against the index: decide what to sync and what to delete, then do it.

The scan is the source of truth for convergence. It trusts no message and no earlier run: a
document is re-synced when the listing's stat data differs from the manifest, or when the index
does not hold the chunk count the manifest promises; a document is deleted when the manifest or
the index knows it and the bucket does not.

A listing that fails (a missing root, an S3 error) raises and plans nothing, so an unavailable
bucket never reads as an empty one; a folder inside it that cannot be read keeps the documents
the index has from it, neither synced nor deleted, until it can be. And since an unmounted
volume or a wrong prefix can look like an empty bucket too, a plan that would delete more than
`scan_hold_deletes_share` of a tenant's documents at once holds those deletes: they are recorded
in the manifest (`held_deletes`, which status shows) and carried out only once an operator
confirms them (`confirm_held_deletes`), or dropped when the objects come back.

A document an admin deleted through the API while its object stays (a tombstone) is settled while
the listing shows the stat data it was deleted with and the index holds none of its points; new
stat data sends it to the syncer, which keeps the tombstone unless the content changed. The
tombstone stands for those bytes under that name, also should the object leave the bucket and come
back (as it would through an unmounted volume): only new content is indexed again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from core.index import ChunkIndex
from core.manifest import NO_TENANT, DocStatus, Manifest, RunSummary
from ingest.bucket import Bucket, ObjectInfo, is_sidecar, sidecar_for
from ingest.documents import tenant_id_of
from ingest.formats import format_version
from ingest.held_deletes import CONFIRMED_DELETES, HELD_DELETES
from ingest.sync import DocumentSyncer, SyncOutcome


@dataclass
class ScanPlan:
    to_sync: list[ObjectInfo] = field(default_factory=list)
    to_delete: list[str] = field(default_factory=list)
    unchanged: int = 0
    sidecars: dict[str, ObjectInfo] = field(default_factory=dict)
    held: dict[str, list[str]] = field(default_factory=dict)  # tenant -> deletes held back
    unreadable: list[str] = field(default_factory=list)  # folders the listing could not read

    @property
    def total_work(self) -> int:
        return len(self.to_sync) + len(self.to_delete)


@dataclass(frozen=True)
class DeleteGuard:
    """Deletes of one tenant in one scan are held past `share` of its documents, if at least
    `min_documents` would go (deleting one of two documents is an edit, not an outage)."""

    share: float
    min_documents: int
    default_tenant: str

    def holds(self, deletes: int, documents: int) -> bool:
        return deletes >= self.min_documents and deletes > self.share * documents

    def tenant(self, doc_id: str) -> str:
        """The tenant whose deletes `doc_id` counts among; NO_TENANT for a key that has none."""
        return tenant_id_of(doc_id, self.default_tenant)

    def by_tenant(
        self, gone: Iterable[str], known: Iterable[str]
    ) -> list[tuple[str, list[str], int]]:
        """Each tenant's deletes among `gone`, with how many of its documents are `known`: what
        `holds` weighs. The scan and the watcher's hints weigh them alike, here."""
        documents: dict[str, int] = {}
        for doc_id in known:
            tenant = self.tenant(doc_id)
            documents[tenant] = documents.get(tenant, 0) + 1
        deletes: dict[str, list[str]] = {}
        for doc_id in gone:
            deletes.setdefault(self.tenant(doc_id), []).append(doc_id)
        return [(t, ids, documents.get(t, 0)) for t, ids in deletes.items()]


class BucketScanner:
    """Lists the bucket once and diffs it against the manifest and the index."""

    def __init__(
        self, bucket: Bucket, manifest: Manifest, index: ChunkIndex, guard: DeleteGuard
    ) -> None:
        self._bucket = bucket
        self._manifest = manifest
        self._index = index
        self.guard = guard

    def plan(self) -> ScanPlan:
        plan = ScanPlan()
        documents: list[ObjectInfo] = []
        for obj in self._bucket.list():
            if obj.key.endswith("/"):
                plan.unreadable.append(obj.key)
            elif is_sidecar(obj.key):
                plan.sidecars[obj.key] = obj
            else:
                documents.append(obj)
        records = self._manifest.object_states()
        indexed = self._index.document_ids()
        for obj in documents:
            record = records.get(obj.key)
            sidecar = plan.sidecars.get(sidecar_for(obj.key))
            settled = (
                record is not None
                and record.same_object(
                    obj.size, obj.mtime, obj.etag, sidecar.signature if sidecar else ""
                )
                and record.format_version == format_version(obj.key)
                and (
                    record.status == DocStatus.FAILED
                    or (record.tombstone and obj.key not in indexed)
                    or (
                        record.status == DocStatus.INDEXED
                        and indexed.get(obj.key, 0) == record.chunk_count
                        and record.source == self._bucket.uri(obj.key)
                    )
                )
            )
            if settled:
                plan.unchanged += 1
            else:
                plan.to_sync.append(obj)
        present = {obj.key for obj in documents}
        known = {d for d, r in records.items() if r.status != DocStatus.DELETED} | set(indexed)
        gone = sorted(d for d in known - present if not d.startswith(tuple(plan.unreadable)))
        plan.to_delete, plan.held = self._hold_mass_deletes(gone, known)
        return plan

    def _hold_mass_deletes(
        self, to_delete: list[str], known: set[str]
    ) -> tuple[list[str], dict[str, list[str]]]:
        """Split the deletes into those to carry out and those held per tenant; record both."""
        missing = set(to_delete)

        def prune(confirmed: dict | None) -> dict:
            """Confirmations stand while their documents are still gone, no longer."""
            kept = {t: [d for d in ids if d in missing] for t, ids in (confirmed or {}).items()}
            return {t: ids for t, ids in kept.items() if ids}

        confirmed = self._manifest.update_meta(CONFIRMED_DELETES, prune)
        carry_out: list[str] = []
        held: dict[str, list[str]] = {}
        weighed: dict[str, int] = {}  # tenant -> its documents, for the record of what is held
        for tenant, doc_ids, documents in self.guard.by_tenant(to_delete, known):
            weighed[tenant] = documents
            allowed = set(confirmed.get(tenant, ()))
            rest = [d for d in doc_ids if d not in allowed]
            carry_out += [d for d in doc_ids if d in allowed]
            # A document of no tenant was quarantined and never searchable: its delete loses
            # nothing, and no tenant id exists to confirm it with.
            if tenant != NO_TENANT and self.guard.holds(len(rest), documents):
                held[tenant] = rest
            else:
                carry_out += rest
        now = time.time()

        def record(previous: dict | None) -> dict:
            previous = previous or {}
            return {
                tenant: {
                    "doc_ids": doc_ids,
                    "documents": weighed[tenant],
                    "since": previous.get(tenant, {}).get("since", now),
                }
                for tenant, doc_ids in held.items()
            }

        self._manifest.update_meta(HELD_DELETES, record)
        return sorted(carry_out), held


Progress = Callable[[int], None]


def execute(
    plan: ScanPlan,
    syncer: DocumentSyncer,
    batch_docs: int,
    progress: Progress | None = None,
) -> RunSummary:
    """Carry out a plan in batches; one bad document never stops the others."""
    summary = RunSummary(unchanged=plan.unchanged)

    def count(outcomes: Iterable[SyncOutcome]) -> None:
        n = 0
        for o in outcomes:
            setattr(summary, o.kind, getattr(summary, o.kind) + 1)
            summary.chunks_embedded += o.chunks_embedded
            n += 1
        if progress:
            progress(n)

    for start in range(0, len(plan.to_sync), batch_docs):
        batch = plan.to_sync[start : start + batch_docs]
        count(syncer.sync(batch, plan.sidecars))
    for doc_id in plan.to_delete:
        count([syncer.delete(doc_id)])
    summary.finished_at = time.time()
    return summary
