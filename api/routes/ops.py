"""Liveness, the caller's status, and Prometheus metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import Principal, current_principal, current_scope, require_admin
from api.schemas import IndexOut, LastRun, RerankerOut, StatusOut
from api.state import ApiState, api_state
from core.generation import GENERATION_META, REBUILD_META
from core.types import TenantScope

router = APIRouter(tags=["ops"])
State = Annotated[ApiState, Depends(api_state)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving; no dependency is touched."""
    return {"status": "ok"}


@router.get("/v1/status", response_model=StatusOut)
def status(
    state: State,
    scope: Annotated[TenantScope, Depends(current_scope)],
    principal: Annotated[Principal, Depends(current_principal)],
) -> StatusOut:
    """Documents per state and chunks in the index for the caller's tenant; what is loaded.

    The last run is shared by all tenants, so only its times are shown, not its counts.
    """
    rt = state.runtime
    last = rt.manifest.last_run()
    return StatusOut(
        tenant=scope.tenant_id,
        documents=rt.manifest.status_counts(scope.tenant_id),
        index_chunks=rt.index.count(scope),
        last_run=LastRun(
            started_at=datetime.fromtimestamp(last.started_at, UTC),
            finished_at=datetime.fromtimestamp(last.finished_at, UTC) if last.finished_at else None,
        )
        if last
        else None,
        reranker=RerankerOut(
            available=state.reranker.available,
            name=state.reranker.name,
            reason=state.reranker.reason,
        ),
        llm_configured=state.llm is not None,
        legs=state.search.leg_names,
        index=_index_status(state, principal.is_admin),
    )


def _index_status(state: ApiState, admin: bool) -> IndexOut:
    """The served generation and how much of it HNSW covers; a rebuild's progress.

    Point and document counts span every tenant, so a tenant's key sees shares, not counts.
    """
    rt = state.runtime
    generation = rt.manifest.get_meta(GENERATION_META) or {}
    vectors = rt.index.vector_status()
    rebuild = rt.manifest.get_meta(REBUILD_META)
    if rebuild is not None and rebuild.get("switched"):
        rebuild = None
    elif rebuild is not None and not admin:
        share = rebuild["done"] / rebuild["total"] if rebuild["total"] else 0.0
        rebuild = {"target": rebuild["target"], "done_percent": round(100 * share, 1)}
    points = vectors["points"]
    return IndexOut(
        generation=generation.get("id"),
        embedding_model=generation.get("embedding_model"),
        chunk_size=generation.get("chunk_size"),
        chunk_overlap=generation.get("chunk_overlap"),
        indexed_percent=round(100 * vectors["indexed_vectors"] / points, 1) if points else 100.0,
        points=points if admin else None,
        indexed_vectors=vectors["indexed_vectors"] if admin else None,
        rebuild=rebuild,
    )


@router.get("/metrics", dependencies=[Depends(require_admin)])
def metrics(state: State) -> Response:
    """Prometheus exposition; needs an admin key (it names every tenant)."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
