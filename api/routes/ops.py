"""Liveness, the caller's status, and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.auth import Principal, current_principal, require_operator, target_scope
from api.schemas import RerankerOut, StatusOut
from api.state import ApiState, api_state
from core.types import TenantScope
from ingest.status import read_status, status_json
from retrieval.rerank import RerankerStatus

router = APIRouter(tags=["ops"])
State = Annotated[ApiState, Depends(api_state)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving; no dependency is touched."""
    return {"status": "ok"}


@router.get("/v1/status", response_model=StatusOut)
def status(
    state: State,
    caller: Annotated[Principal, Depends(current_principal)],
    scope: Annotated[TenantScope, Depends(target_scope)],
) -> StatusOut:
    """Documents per state and chunks in the index for the caller's tenant (the operator key may
    name another with `?tenant=`); what is loaded.

    The body is `rag status --json`'s (`ingest.status.status_json`) plus what this process
    loaded. What spans tenants (the whole index's counts, the last ingestion run and scan, model
    folders) is the operator key's; a tenant sees its own documents' times in `/v1/documents`.
    """
    report = read_status(state.runtime.manifest, scope.tenant_id)
    return StatusOut.model_validate(
        {
            **status_json(report, caller.is_operator),
            "reranker": _reranker_status(state.reranker, caller.is_operator),
            "llm_configured": state.llm is not None,
            "search_modes": state.search.modes,
        }
    )


def _reranker_status(reranker: RerankerStatus, operator: bool) -> RerankerOut:
    """The operator sees the configured model (a path, maybe) and the loader's error; a tenant
    its name and which model failed."""
    if operator:
        return RerankerOut(available=reranker.available, name=reranker.name, reason=reranker.reason)
    return RerankerOut(
        available=reranker.available, name=reranker.label, reason=reranker.public_reason
    )


@router.get("/metrics", dependencies=[Depends(require_operator)])
def metrics(state: State) -> Response:
    """Prometheus exposition; needs the operator key, since it names every tenant with its
    index size and evaluation means (a tenant reads its own in `/v1/status` and its runs)."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
