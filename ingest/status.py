"""What the platform is doing, read from the manifest alone (it never needs the index's lock).

`StatusReport` is the one read model of status, and `status_json` its one public form: `rag
status` prints it (as JSON with `--json`) and the API's `/v1/status` serves it, for the caller's
tenant, so both show the same numbers under the same names. The tests and the bench wait on it.

Chunk counts come from the documents' records (`Manifest.chunk_count`), which is what the index
holds once the syncs in flight finish; how many of them the vector index (HNSW) covers comes from
the engine's figures at the last build, the only moment the embedded engine changes them (`rag
ingest`, and the workers' optimize timer, which also reads a Qdrant server's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.generation import GENERATION_META, REBUILD_META, VECTOR_INDEX_META
from core.manifest import DocStatus, DocumentRecord, Manifest, RunSummary
from core.model_digest import model_label
from ingest.held_deletes import held_deletes

SCAN_FAILED = "the last scan could not list the bucket, so it changed and deleted nothing"
RUN_OUTCOMES = ("added", "modified", "deleted", "unchanged", "failed")


@dataclass(frozen=True)
class StatusReport:
    tenant: str | None  # whose documents and chunks; None: every tenant's
    counts: dict[str, int]  # documents in each state, every state listed; in flight wins
    chunks: int  # chunks in the index, of the tenant (of every tenant when none)
    all_chunks: int  # of every tenant: what the vector index covers
    last_run: RunSummary | None  # the last ingestion run; it covers every tenant
    last_scan: dict | None  # when the last full scan started, what it enqueued and skipped
    failed: list[DocumentRecord] = field(default_factory=list)
    in_flight: list[DocumentRecord] = field(default_factory=list)
    held_deletes: dict[str, int] = field(default_factory=dict)  # per tenant, until confirmed
    # The served index generation's fingerprint, and a rebuild's progress (`ingest.reindex`).
    generation: dict | None = None
    rebuild: dict | None = None
    vector_index: dict | None = None  # the engine's points and indexed vectors at the last build

    @property
    def indexed_chunks(self) -> int:
        """Chunks in the vector index's graph; at most all of them (deletes since the build)."""
        return min((self.vector_index or {}).get("indexed_vectors", 0), self.all_chunks)

    @property
    def indexed_percent(self) -> float:
        return round(100 * self.indexed_chunks / self.all_chunks, 1) if self.all_chunks else 100.0


def read_status(manifest: Manifest, tenant_id: str | None = None) -> StatusReport:
    """Every tenant's status, or only `tenant_id`'s documents, chunks and held deletes."""
    records = sorted(manifest.current(tenant_id).values(), key=lambda r: r.doc_id)
    counts = {str(s): 0 for s in DocStatus}
    for r in records:
        counts[r.status] += 1
    return StatusReport(
        tenant=tenant_id,
        counts=counts,
        chunks=manifest.chunk_count(tenant_id),
        all_chunks=manifest.chunk_count(),
        last_run=manifest.last_run(),
        last_scan=manifest.get_meta("last_scan"),
        failed=[r for r in records if r.status == DocStatus.FAILED],
        in_flight=[r for r in records if r.status in (DocStatus.QUEUED, DocStatus.PROCESSING)],
        held_deletes=held_deletes(manifest, tenant_id),
        generation=manifest.get_meta(GENERATION_META),
        rebuild=manifest.get_meta(REBUILD_META),
        vector_index=manifest.get_meta(VECTOR_INDEX_META),
    )


def status_json(report: StatusReport, operator: bool) -> dict[str, Any]:
    """The status as `/v1/status` serves it and `rag status` shows it: one set of names and
    numbers for both (the API adds what its process loaded: reranker, LLM, search modes).

    What spans tenants is the operator's (the command line is the operator's too): the whole
    index's chunk counts, the last ingestion run (its times tell when any tenant's documents
    changed), the last scan, the embedding model's folder. A tenant sees shares, and models by
    name; it learns only that a failed scan stopped safely, not why.
    """
    generation = report.generation or {}
    model = generation.get("embedding_model")
    rebuild = report.rebuild
    if rebuild is not None and rebuild.get("switched"):
        rebuild = None
    elif rebuild is not None and not operator:
        share = rebuild["done"] / rebuild["total"] if rebuild["total"] else 0.0
        rebuild = {"target": rebuild["target"], "done_percent": round(100 * share, 1)}
    last = report.last_run if operator else None
    return {
        "tenant": report.tenant,
        "documents": {name: n for name, n in report.counts.items() if n},
        "index_chunks": report.chunks,
        "held_deletes": sum(report.held_deletes.values()),
        "scan_error": SCAN_FAILED if (report.last_scan or {}).get("error") else None,
        "last_scan": report.last_scan if operator else None,
        "last_run": _run_json(last) if last is not None else None,
        "index": {
            "generation": generation.get("id"),
            "embedding_model": model if operator or model is None else model_label(model),
            "chunk_size": generation.get("chunk_size"),
            "chunk_overlap": generation.get("chunk_overlap"),
            "indexed_percent": report.indexed_percent,
            "chunks": report.all_chunks if operator else None,
            "indexed_chunks": report.indexed_chunks if operator else None,
            "rebuild": rebuild,
        },
    }


def _run_json(run: RunSummary) -> dict[str, Any]:
    return {
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at) if run.finished_at else None,
        **{outcome: getattr(run, outcome) for outcome in RUN_OUTCOMES},
        "chunks_embedded": run.chunks_embedded,
        "seconds": round(run.seconds, 3),
    }


def _iso(ts: float) -> str:
    """UTC as the API writes its datetimes (`2026-01-02T03:04:05.678Z`), so both print one text."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
