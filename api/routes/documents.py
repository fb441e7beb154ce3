"""The caller's documents as the manifest knows them, and deleting one from the index.

A document id is its bucket key (`tenants/acme/report.pdf`); URL-encode it or send it as a
path, both route here. Every id the listing shows round-trips, control characters (a newline in
a file name) included. Another tenant's document answers 404 exactly like a missing one.

DELETE needs an admin key and acts in the key's own tenant. It goes through the document syncer,
under the document's Redis lock (the one every worker and `rag up` take to sync it), so it never
interleaves with a sync of that document: its chunks leave the index, its facts leave the graph,
and its record is marked deleted by the API. While the object stays in the bucket that record is
a tombstone: scans, tasks and `rag ingest` leave the object out of the index as long as its
content is unchanged (a `touch` or a new sidecar does not bring it back), and index it again once
its content changes. Deleting the object from the bucket removes it for good as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from redis.exceptions import RedisError

from api.auth import Principal, current_scope, require_admin, target_scope
from api.errors import ApiError
from api.schemas import DeletesConfirmed, DocumentOut, DocumentPage
from api.state import ApiState, api_state
from core.locks import Locks
from core.manifest import DocStatus, DocumentRecord
from core.types import TenantScope
from ingest.held_deletes import confirm_held_deletes
from workers.deployment import Deployment

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
        deleted_by=(r.deleted_by or None) if r.status == DocStatus.DELETED else None,
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


@router.post(
    "/confirm-deletes", response_model=DeletesConfirmed, dependencies=[Depends(require_admin)]
)
def confirm_deletes(
    state: State, scope: Annotated[TenantScope, Depends(target_scope)]
) -> DeletesConfirmed:
    """Let the next scan carry out the deletes it held back for the tenant (see /v1/status).

    A scan holds a tenant's deletes when more of its documents left the bucket at once than
    `scan_hold_deletes_share` allows, as an unmounted volume would make them.
    """
    confirmed = confirm_held_deletes(state.runtime.manifest, scope.tenant_id)
    return DeletesConfirmed(tenant=scope.tenant_id, confirmed=confirmed)


@router.get("/{doc_id:any_id}", response_model=DocumentOut)
def get_document(
    doc_id: str, state: State, scope: Annotated[TenantScope, Depends(current_scope)]
) -> DocumentOut:
    return _out(_own(state, scope, doc_id), with_metadata=True)


_DELETE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "a worker is syncing the document; retry after `Retry-After` seconds"},
    503: {
        "description": "the server is at RAG_API_MAX_INFLIGHT requests, or the key's tenant at "
        "RAG_API_MAX_INFLIGHT_PER_TENANT, or the Redis holding the document locks "
        "(RAG_REDIS_URL) does not answer; retry after `Retry-After` seconds"
    },
}


@router.delete("/{doc_id:any_id}", response_model=DocumentOut, responses=_DELETE_ERRORS)
def delete_document(
    doc_id: str, state: State, principal: Annotated[Principal, Depends(require_admin)]
) -> DocumentOut:
    """Remove a document's chunks from the index and its facts from the graph, under its lock.

    Its record stays, marked deleted by the API: a tombstone that keeps the object out of the
    index while its content in the bucket is unchanged (see the module docstring).
    """
    s = state.runtime.settings
    _own(state, principal.scope, doc_id)
    retry = {"Retry-After": str(s.api.retry_after_seconds)}
    locks = Locks(state.redis(), Deployment.of(s).id)  # the workers' own, as they lock it
    lock = locks.document(doc_id, s.workers.document_lock_ttl_seconds)
    try:
        held = lock.acquire(wait_seconds=s.api.delete_lock_wait_seconds)
    except RedisError as exc:
        reason = f"cannot lock the document: Redis at RAG_REDIS_URL does not answer ({exc})"
        raise ApiError(503, "lock_unavailable", reason, headers=retry) from None
    if not held:
        reason = "a worker is syncing the document; retry shortly"
        raise ApiError(409, "document_busy", reason, "doc_id", headers=retry)
    try:
        _own(state, principal.scope, doc_id)  # settled again under the lock
        record = state.platform.ingestion.syncer.tombstone(doc_id)
    finally:
        lock.release()
    if record is None:
        raise ApiError(404, "not_found", "no such document", "doc_id")
    return _out(record)
