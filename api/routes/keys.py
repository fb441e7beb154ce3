"""Key management for admin (operator) keys: create, list, revoke."""

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
    try:
        scope = TenantScope(body.tenant) if body.tenant is not None else admin.scope
    except InvalidTenantError as exc:
        raise ApiError(422, "invalid_tenant", str(exc), "tenant") from None
    try:
        check_label(body.label)
    except InvalidLabelError as exc:
        raise ApiError(422, "invalid_label", str(exc), "label") from None
    key, info = state.keys.create(scope, body.role, body.label)
    return KeyCreated(key=key, **_out(info))


@router.get("", response_model=list[KeyOut])
def list_keys(state: State, _: Admin, tenant: str | None = None) -> list[KeyOut]:
    try:
        scope = TenantScope(tenant) if tenant is not None else None
    except InvalidTenantError as exc:
        raise ApiError(422, "invalid_tenant", str(exc), "tenant") from None
    return [KeyOut(**_out(k)) for k in state.keys.list(scope)]


@router.delete("/{key_id}", status_code=204)
def revoke_key(key_id: str, state: State, _: Admin) -> Response:
    if not state.keys.revoke(key_id):
        raise ApiError(404, "not_found", "no such live key", "key_id")
    return Response(status_code=204)
