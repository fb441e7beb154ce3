"""What the platform is doing, read from the manifest alone (it never needs the index's lock).

`StatusReport` is the one read model of status: `rag status` prints it, the API's `/v1/status`
serves the caller's tenant's, and the tests and the bench wait on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.generation import GENERATION_META, REBUILD_META, VECTOR_INDEX_META
from core.manifest import DocStatus, DocumentRecord, Manifest, RunSummary
from ingest.scan import held_deletes


@dataclass(frozen=True)
class StatusReport:
    counts: dict[str, int]  # documents in each state, every state listed; in flight wins
    last_run: RunSummary | None  # the last ingestion run; it covers every tenant
    last_scan: dict | None  # when the last full scan started, what it enqueued and skipped
    failed: list[DocumentRecord] = field(default_factory=list)
    in_flight: list[DocumentRecord] = field(default_factory=list)
    held_deletes: dict[str, int] = field(default_factory=dict)  # per tenant, until confirmed
    # The served index generation's fingerprint, and a rebuild's progress (`ingest.reindex`).
    generation: dict | None = None
    rebuild: dict | None = None
    vector_index: dict | None = None


def read_status(manifest: Manifest, tenant_id: str | None = None) -> StatusReport:
    """Every tenant's status, or only `tenant_id`'s documents and held deletes."""
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
