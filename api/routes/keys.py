"""Key management: a tenant's admin keys manage that tenant's keys, the operator key every tenant's.

A tenant admin naming another tenant gets 403; revoking another tenant's key answers 404, like a
key that does not exist, so key ids of other tenants cannot be probed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from api.auth import InvalidLabelError, KeyInfo, Principal, check_label, require_admin
from api.errors import ApiError
from api.schemas import KeyCreate, KeyCreated, KeyOut
from api.state import ApiState, api_state
from core.types import InvalidTenantError, TenantScope

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
    """A new key for a tenant (default: the admin key's own); the key is shown only here."""
    scope = _managed(admin, body.tenant) or admin.scope
    try:
        check_label(body.label)
    except InvalidLabelError as exc:
        raise ApiError(422, "invalid_label", str(exc), "label") from None
    key, info = state.keys.create(scope, body.role, body.label)
    return KeyCreated(key=key, **_out(info))


@router.get("", response_model=list[KeyOut])
def list_keys(state: State, admin: Admin, tenant: str | None = None) -> list[KeyOut]:
    """The keys of the caller's tenant; the operator key sees every tenant's unless it names one."""
    scope = _managed(admin, tenant)
    if scope is None and not admin.is_operator:
        scope = admin.scope
    return [KeyOut(**_out(k)) for k in state.keys.list(scope)]


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, state: State, admin: Admin) -> Response:
    if not state.keys.revoke(key_id, None if admin.is_operator else admin.scope):
        raise ApiError(404, "not_found", "no such live key", "key_id")
    return Response(status_code=204)


def _managed(admin: Principal, tenant: str | None) -> TenantScope | None:
    """The tenant a request names, if this admin may manage it (403 otherwise); None if none."""
    if tenant is None:
        return None
    try:
        scope = TenantScope(tenant)
    except InvalidTenantError as exc:
        raise ApiError(422, "invalid_tenant", str(exc), "tenant") from None
    if not admin.may_manage(scope):
        raise ApiError(403, "forbidden", "only the operator key manages other tenants", "tenant")
    return scope
