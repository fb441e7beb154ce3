"""Liveness, the caller's status, and Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import Principal, current_principal, require_operator
from api.schemas import IndexOut, LastRun, RerankerOut, StatusOut
from api.state import ApiState, api_state
from core.model_digest import model_label
from ingest.status import StatusReport, read_status
from retrieval.rerank import RerankerStatus

router = APIRouter(tags=["ops"])
_SCAN_FAILED = "the last scan could not list the bucket, so it changed and deleted nothing"
State = Annotated[ApiState, Depends(api_state)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving; no dependency is touched."""
    return {"status": "ok"}


@router.get("/v1/status", response_model=StatusOut)
def status(state: State, caller: Annotated[Principal, Depends(current_principal)]) -> StatusOut:
    """Documents per state and chunks in the index for the caller's tenant; what is loaded.

    The last ingestion run covers every tenant, and its times tell when any tenant's documents
    changed (a watcher hint starts a run), so it is shown to the operator key only; a
    tenant sees its own documents' times in `/v1/documents`. Models are named, never by the
    server's paths, except to the operator.
    """
    rt, scope = state.runtime, caller.scope
    report = read_status(rt.manifest, scope.tenant_id)
    last = report.last_run if caller.is_operator else None
    return StatusOut(
        tenant=scope.tenant_id,
        documents={name: n for name, n in report.counts.items() if n},
        index_chunks=rt.index.count(scope),
        held_deletes=report.held_deletes.get(scope.tenant_id, 0),
        # The operator's log has the cause; a tenant learns only that the scan stopped safely.
        scan_error=_SCAN_FAILED if (report.last_scan or {}).get("error") else None,
        last_run=LastRun(
            started_at=datetime.fromtimestamp(last.started_at, UTC),
            finished_at=datetime.fromtimestamp(last.finished_at, UTC) if last.finished_at else None,
        )
        if last
        else None,
        reranker=_reranker_status(state.reranker, caller.is_operator),
        llm_configured=state.llm is not None,
        legs=state.search.leg_names,
        index=_index_status(state, report, caller.is_operator),
    )


def _reranker_status(reranker: RerankerStatus, operator: bool) -> RerankerOut:
    """The operator sees the configured model (a path, maybe) and the loader's error; a tenant
    its name and which model failed."""
    if operator:
        return RerankerOut(available=reranker.available, name=reranker.name, reason=reranker.reason)
    return RerankerOut(
        available=reranker.available, name=reranker.label, reason=reranker.public_reason
    )


def _index_status(state: ApiState, report: StatusReport, operator: bool) -> IndexOut:
    """The served generation and how much of it HNSW covers; a rebuild's progress.

    Point and document counts span every tenant, so a tenant's key sees shares, not counts, and
    the model's name, not its folder.
    """
    generation = report.generation or {}
    vectors = state.runtime.index.vector_status()  # live: the manifest's copy is from the last run
    rebuild = report.rebuild
    if rebuild is not None and rebuild.get("switched"):
        rebuild = None
    elif rebuild is not None and not operator:
        share = rebuild["done"] / rebuild["total"] if rebuild["total"] else 0.0
        rebuild = {"target": rebuild["target"], "done_percent": round(100 * share, 1)}
    points = vectors["points"]
    model = generation.get("embedding_model")
    return IndexOut(
        generation=generation.get("id"),
        embedding_model=model if operator or model is None else model_label(model),
        chunk_size=generation.get("chunk_size"),
        chunk_overlap=generation.get("chunk_overlap"),
        indexed_percent=round(100 * vectors["indexed_vectors"] / points, 1) if points else 100.0,
        points=points if operator else None,
        indexed_vectors=vectors["indexed_vectors"] if operator else None,
        rebuild=rebuild,
    )


@router.get("/metrics", dependencies=[Depends(require_operator)])
def metrics(state: State) -> Response:
    """Prometheus exposition; needs the operator key, since it names every tenant with its
    index size and evaluation means (a tenant reads its own in `/v1/status` and its runs)."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
