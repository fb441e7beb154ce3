"""What the platform is doing, read from the manifest alone (it never needs the index's lock).

`rag status`, the API's `/v1/status` and `/v1/documents`, the tests and the bench all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.generation import GENERATION_META, REBUILD_META, VECTOR_INDEX_META
from core.manifest import DocStatus, DocumentRecord, Manifest, RunSummary
from ingest.scan import held_deletes


@dataclass
class StatusReport:
    counts: dict[str, int]
    last_run: RunSummary | None
    last_scan: dict | None  # when the last full scan started, what it enqueued and skipped
    failed: list[DocumentRecord] = field(default_factory=list)
    in_flight: list[DocumentRecord] = field(default_factory=list)
    held_deletes: dict[str, int] = field(default_factory=dict)  # per tenant, until confirmed
    # The served index generation's fingerprint, and a rebuild's progress (`ingest.reindex`).
    generation: dict | None = None
    rebuild: dict | None = None
    vector_index: dict | None = None


def read_status(manifest: Manifest, tenant_id: str | None = None) -> StatusReport:
    records = sorted(manifest.current(tenant_id).values(), key=lambda r: r.doc_id)
    counts = {str(s): 0 for s in DocStatus}
    for r in records:
        counts[r.status] += 1
    return StatusReport(
        counts=counts,
        last_run=manifest.last_run(),
        last_scan=manifest.get_meta("last_scan"),
        failed=[r for r in records if r.status == DocStatus.FAILED],
        in_flight=[r for r in records if r.status in (DocStatus.QUEUED, DocStatus.PROCESSING)],
        held_deletes=held_deletes(manifest, tenant_id),
        generation=manifest.get_meta(GENERATION_META),
        rebuild=manifest.get_meta(REBUILD_META),
        vector_index=manifest.get_meta(VECTOR_INDEX_META),
    )


def converged(manifest: Manifest, since: float) -> bool:
    """A full scan that started after `since` found nothing to enqueue, and nothing is in flight:
    the index held what the bucket held when that scan looked."""
    scan = manifest.get_meta("last_scan")
    return (
        scan is not None
        and scan["started_at"] > since
        and not scan.get("error")
        and scan["sync"] == scan["delete"] == scan["in_flight"] == 0
        and not manifest.pending()
    )
