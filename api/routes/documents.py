"""The caller's documents as the manifest knows them, and deleting one from the index.

A document id is its bucket key (`tenants/acme/report.pdf`); URL-encode it or send it as a
path, both route here. Every id the listing shows round-trips, control characters (a newline in
a file name) included. Another tenant's document answers 404 exactly like a missing one.

DELETE needs an admin key and acts in the key's own tenant: it removes the document's chunks
from the index and marks its record deleted. The bucket stays the source of truth: if the object
is still in the bucket, the next scan indexes it again, so delete it there to remove it for good.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.convertors import PathConvertor, register_url_convertor

from api.auth import Principal, current_scope, require_admin
from api.errors import ApiError
from api.schemas import DeletesConfirmed, DocumentOut, DocumentPage
from api.state import ApiState, api_state
from core.manifest import DocStatus, DocumentRecord
from core.types import InvalidTenantError, TenantScope
from ingest.scan import confirm_held_deletes


class DocIdConvertor(PathConvertor):
    """The rest of the path, newlines included: Starlette's `path` (`.*`) stops at a newline."""

    regex = "(?s:.+)"


register_url_convertor("doc_id", DocIdConvertor())
router = APIRouter(prefix="/v1/documents", tags=["documents"])
State = Annotated[ApiState, Depends(api_state)]


def _time(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _out(r: DocumentRecord, with_metadata: bool = False) -> DocumentOut:
    return DocumentOut(
        doc_id=r.doc_id,
        source=r.source,
        status=str(r.status),
        size=r.size,
        modified_at=_time(r.mtime) if r.mtime else None,
        chunks=len(r.chunk_ids),
        error=r.error,
        attempts=r.attempts,
        updated_at=_time(r.updated_at),
        metadata=r.meta if with_metadata else None,
    )


def _own(state: ApiState, scope: TenantScope, doc_id: str) -> DocumentRecord:
    record = state.runtime.manifest.get(doc_id)
    if record is None or record.tenant_id != scope.tenant_id:
        raise ApiError(404, "not_found", "no such document", "doc_id")
    return record


@router.get("", response_model=DocumentPage)
def list_documents(
    state: State,
    scope: Annotated[TenantScope, Depends(current_scope)],
    status: DocStatus | None = None,
    after: Annotated[str | None, Query(max_length=1024, description="a doc_id")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DocumentPage:
    """Documents of the caller's tenant in doc_id order, `limit` per page."""
    records = sorted(state.runtime.manifest.all(scope.tenant_id).values(), key=lambda r: r.doc_id)
    records = [
        r
        for r in records
        if (status is None or r.status == status) and (after is None or r.doc_id > after)
    ]
    page = records[:limit]
    more = len(records) > limit
    return DocumentPage(
        documents=[_out(r) for r in page], next_after=page[-1].doc_id if more else None
    )


@router.post("/confirm-deletes", response_model=DeletesConfirmed)
def confirm_deletes(
    state: State,
    principal: Annotated[Principal, Depends(require_admin)],
    tenant: Annotated[str | None, Query(description="operator key only; default: own")] = None,
) -> DeletesConfirmed:
    """Let the next scan carry out the deletes it held back for the tenant (see /v1/status).

    A scan holds a tenant's deletes when more of its documents left the bucket at once than
    `scan_hold_deletes_share` allows, as an unmounted volume would make them.
    """
    try:
        scope = TenantScope(tenant) if tenant is not None else principal.scope
    except InvalidTenantError as exc:
        raise ApiError(422, "invalid_tenant", str(exc), "tenant") from None
    if not principal.may_manage(scope):
        raise ApiError(403, "forbidden", "only the operator key acts on other tenants", "tenant")
    confirmed = confirm_held_deletes(state.runtime.manifest, scope.tenant_id)
    return DeletesConfirmed(tenant=scope.tenant_id, confirmed=confirmed)


@router.get("/{doc_id:doc_id}", response_model=DocumentOut)
def get_document(
    doc_id: str, state: State, scope: Annotated[TenantScope, Depends(current_scope)]
) -> DocumentOut:
    return _out(_own(state, scope, doc_id), with_metadata=True)


@router.delete("/{doc_id:doc_id}", response_model=DocumentOut)
def delete_document(
    doc_id: str, state: State, principal: Annotated[Principal, Depends(require_admin)]
) -> DocumentOut:
    """Remove a document's chunks from the index and the graph; its record stays, marked deleted.

    The bucket is the source of truth: if the object is still there, the next scan indexes it
    again. Delete it from the bucket to remove it for good.
    """
    runtime = state.runtime
    record = _own(state, principal.scope, doc_id)
    runtime.index.delete_document(principal.scope, doc_id)
    for listener in state.platform.listeners:  # the graph, when enabled
        listener.on_deleted(principal.scope, doc_id)
    return _out(runtime.manifest.mark_deleted(record))
