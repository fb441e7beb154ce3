"""Key management: a tenant's admin keys manage that tenant's keys, the operator key every tenant's.

A tenant admin naming another tenant gets 403; revoking another tenant's key answers 404, like a
key that does not exist, so key ids of other tenants cannot be probed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from api.auth import (
    InvalidLabelError,
    KeyInfo,
    Principal,
    check_label,
    no_documents_reason,
    require_admin,
)
from api.errors import ApiError
from api.schemas import KeyCreate, KeyCreated, KeyOut
from api.state import ApiState, api_state

router = APIRouter(prefix="/v1/keys", tags=["keys"])
State = Annotated[ApiState, Depends(api_state)]
Admin = Annotated[Principal, Depends(require_admin)]


def _out(info: KeyInfo) -> dict[str, object]:
    return {
        "key_id": info.key_id,
        "tenant": info.tenant_id,
        "role": info.role,
        "label": info.label,
        "created_at": datetime.fromtimestamp(info.created_at, UTC),
        "revoked_at": datetime.fromtimestamp(info.revoked_at, UTC) if info.revoked_at else None,
    }


@router.post("", response_model=KeyCreated, status_code=201)
def create_key(body: KeyCreate, state: State, admin: Admin) -> KeyCreated:
    """A new key for a tenant (default: the admin key's own); the key is shown only here.

    A tenant without documents gets its key, since keys may be provisioned before documents
    arrive; the operator key, the one that may name any tenant and so mistype one, is warned.
    A tenant admin can name only its own tenant, and is told nothing of the others.
    """
    scope = admin.tenant_scope(body.tenant)
    try:
        check_label(body.label)
    except InvalidLabelError as exc:
        raise ApiError(422, "invalid_label", str(exc), "label") from None
    key, info = state.keys.create(scope, body.role, body.label)
    warning = None
    if admin.is_operator:
        warning = no_documents_reason(scope.tenant_id, state.runtime.manifest.tenants())
    return KeyCreated(key=key, warning=warning, **_out(info))


@router.get("", response_model=list[KeyOut])
def list_keys(
    state: State,
    admin: Admin,
    tenant: Annotated[
        str | None, Query(description="the operator key only: another tenant (default: every one)")
    ] = None,
) -> list[KeyOut]:
    """The keys of the caller's tenant; the operator key sees every tenant's unless it names one."""
    scope = None if tenant is None and admin.is_operator else admin.tenant_scope(tenant)
    return [KeyOut(**_out(k)) for k in state.keys.list(scope)]


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, state: State, admin: Admin) -> Response:
    if not state.keys.revoke(key_id, None if admin.is_operator else admin.scope):
        raise ApiError(404, "not_found", "no such live key", "key_id")
    return Response(status_code=204)
