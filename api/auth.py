"""API keys: who is calling, for which tenant, with which role.

A key is `rag_<key id>_<secret>`. Only SHA-256 of the secret is stored (the secret is 256 random
bits, so a plain hash is enough: there is nothing to brute-force), and it is compared in constant
time. Missing, malformed, unknown and revoked keys all take the same path (a row lookup and a
digest comparison against a dummy when there is no row) and get the same 401, so responses do
not tell which keys exist.

The tenant of every request comes from its key and nothing else. Roles:
- `reader`: search, answer and read the documents, status, golden set and evaluation reports of
  its own tenant.
- `admin`: a tenant's administrator. Everything a reader can do in its own tenant, plus managing
  its own tenant's keys and golden set, deleting its documents from the index and confirming the
  deletes a scan held back for it.
The operator key `settings.admin_api_key` is the only one that acts across tenants: it is an
admin of `settings.default_tenant` that may also name any other tenant (`Principal.tenant_scope`,
the one rule every route that takes a tenant follows) and read `/metrics`, which names every
tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, get_args

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from core.settings import Settings
from core.sqlite import Migration, SqliteStore
from core.types import InvalidTenantError, Role, TenantScope, is_tenant_id

BOOTSTRAP_KEY_ID = "bootstrap"

_PREFIX = "rag"
# The key store's schema, one step per release that changed it (see core.sqlite).
MIGRATIONS = [
    Migration(
        1,
        "hashed keys by id, with tenant, role, label and revocation time",
        """
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    role TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant_id);
""",
    )
]
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
_COLUMNS = "key_id, tenant_id, role, label, created_at, revoked_at"


def _split_token(token: str) -> tuple[str, str]:
    """(key id, secret) of a `rag_<key id>_<secret>` token; the key id is "" for any other form."""
    prefix, _, rest = token.partition("_")
    key_id, _, secret = rest.partition("_")
    return (key_id if prefix == _PREFIX else ""), secret


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The caller: the tenant its key belongs to, the key's id and its role."""

    scope: TenantScope
    key_id: str
    role: Role

    @property
    def tenant_id(self) -> str:
        return self.scope.tenant_id

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_operator(self) -> bool:
        """The operator key (`settings.admin_api_key`): the one key that spans tenants."""
        return self.key_id == BOOTSTRAP_KEY_ID

    def tenant_scope(self, named: str | None) -> TenantScope:
        """The tenant a request acts on: the caller's own, unless it names another, which only
        the operator key may; 422 for an invalid tenant id, 403 for a tenant not the caller's.

        The one answer to "which tenant may this caller act on": every route that takes a
        tenant (a query, path or body field) asks it, so no role check of a route can widen it.
        """
        if named is None:
            return self.scope
        try:
            scope = TenantScope(named)
        except InvalidTenantError as exc:
            raise ApiError(422, "invalid_tenant", str(exc), "tenant") from None
        if scope != self.scope and not self.is_operator:
            raise ApiError(
                403, "forbidden", "only the operator key acts on another tenant", "tenant"
            )
        return scope


@dataclass(frozen=True)
class KeyInfo:
    """A key as listed: never its secret or hash."""

    key_id: str
    tenant_id: str
    role: Role
    label: str
    created_at: float
    revoked_at: float | None


LABEL_MAX_CHARS = 200


class InvalidLabelError(ValueError):
    pass


def check_label(label: str) -> str:
    """A key label is a one-line note: no NUL, newline or other control character, which would
    break the lists and terminals that show it."""
    if len(label) > LABEL_MAX_CHARS:
        raise InvalidLabelError(f"a label is limited to {LABEL_MAX_CHARS} characters")
    if any(not ch.isprintable() for ch in label):
        raise InvalidLabelError(
            "a label may not hold control characters (NUL, newlines, tabs, escapes)"
        )
    return label


def keys_path(settings: Settings) -> Path:
    return settings.data_dir / "api_keys.sqlite"


class KeyStore(SqliteStore):
    """Hashed API keys in SQLite beside the manifest."""

    def __init__(self, path: Path, bootstrap: tuple[str, TenantScope] | None = None) -> None:
        super().__init__(path, MIGRATIONS)
        self._bootstrap_hash = _digest(bootstrap[0]) if bootstrap else _DUMMY_HASH
        self._bootstrap_scope = bootstrap[1] if bootstrap else None

    @classmethod
    def open(cls, settings: Settings) -> KeyStore:
        admin = settings.api.admin_api_key
        bootstrap = (
            (admin.get_secret_value(), TenantScope(settings.default_tenant)) if admin else None
        )
        return cls(keys_path(settings), bootstrap)

    def create(self, tenant: TenantScope, role: Role, label: str = "") -> tuple[str, KeyInfo]:
        """A new key; the returned string is the only time its secret exists outside a hash."""
        if role not in get_args(Role):
            raise ValueError(f"role must be one of {', '.join(get_args(Role))}")
        check_label(label)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        info = KeyInfo(key_id, tenant.tenant_id, role, label, time.time(), None)
        with self._lock:
            self._conn.execute(
                "INSERT INTO api_keys (key_id, tenant_id, role, secret_hash, label, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, tenant.tenant_id, role, _digest(secret), label, info.created_at),
            )
        return f"{_PREFIX}_{key_id}_{secret}", info

    def verify(self, token: str) -> Principal | None:
        """The key's principal, or None; the same work whether or not the key exists."""
        bootstrap_ok = hmac.compare_digest(_digest(token), self._bootstrap_hash)
        key_id, secret = _split_token(token)
        with self._lock:
            row = self._conn.execute(
                "SELECT tenant_id, role, secret_hash, revoked_at FROM api_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        stored = row[2] if row else _DUMMY_HASH
        key_ok = hmac.compare_digest(_digest(secret), stored) and row is not None
        # A key an older release minted for a name that is not a tenant id ("acme\n") is refused
        # like an unknown one: no scope can be built for it.
        if key_ok and row[3] is None and is_tenant_id(row[0]):
            return Principal(TenantScope(row[0]), key_id, row[1])
        if bootstrap_ok and self._bootstrap_scope is not None:
            return Principal(self._bootstrap_scope, BOOTSTRAP_KEY_ID, "admin")
        return None

    def list(self, tenant: TenantScope | None = None) -> list[KeyInfo]:
        sql, args = f"SELECT {_COLUMNS} FROM api_keys", ()
        if tenant is not None:
            sql, args = sql + " WHERE tenant_id = ?", (tenant.tenant_id,)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_at", args).fetchall()
        return [KeyInfo(*r) for r in rows]

    def revoke(self, key_id: str, tenant: TenantScope | None = None) -> bool:
        """Revoke a live key (only if it is `tenant`'s, when given); False if there is none."""
        sql = "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL"
        args: tuple = (time.time(), key_id)
        if tenant is not None:
            sql, args = sql + " AND tenant_id = ?", (*args, tenant.tenant_id)
        with self._lock:
            cur = self._conn.execute(sql, args)
        return cur.rowcount > 0

    def tenants(self) -> set[str]:
        """Tenants with a live key: the ones that can reach the API."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT tenant_id FROM api_keys WHERE revoked_at IS NULL"
            ).fetchall()
        return {r[0] for r in rows if is_tenant_id(r[0])}


def create_key(settings: Settings, tenant: str, role: Role = "reader", label: str = "") -> str:
    """Mint a key from the command line (`rag keys create`); prints nowhere, returns the key."""
    store = KeyStore.open(settings)
    try:
        key, _ = store.create(TenantScope(tenant), role, label)
    finally:
        store.close()
    return key


def no_documents_reason(tenant_id: str, tenants_with_documents: list[str]) -> str | None:
    """Why a new key for `tenant_id` likely names the wrong tenant (a typo mints a key whose
    searches all answer 200 with nothing): it has no documents; the reason lists the tenants
    that have. None when it has documents."""
    if tenant_id in tenants_with_documents:
        return None
    known = ", ".join(tenants_with_documents) or "none"
    return f"no documents for tenant {tenant_id!r} (known tenants: {known})"


# --------------------------------------------------------------------------- FastAPI dependencies

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: <API key>`")


def claimed_key_id(token: str) -> str:
    """The key id a token names (the part before its secret), for the audit log; "" if none."""
    key_id = _split_token(token)[0]
    return key_id[:32] if key_id.isalnum() else ""


_UNAUTHORIZED_REASON = (
    "missing or invalid API key; send `Authorization: Bearer <key>` or `X-API-Key: <key>`"
)


async def current_principal(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    """The caller, or 401; for routers that need the role or key id.

    Async on purpose: the key lookup is one indexed SQLite read, as quick as the one the load
    shedder makes on the event loop for the same request (`api.limits.key_tenant`). In the thread
    pool it would queue first come, first served behind other tenants' blocking work, before the
    request ever reached its fair pool (`api.fairness`).
    """
    token = bearer.credentials if bearer else api_key or ""
    state = request.app.state.api
    principal = state.keys.verify(token)
    if principal is None:
        state.audit.refused(
            client=request.client.host if request.client else "",
            claimed_key_id=claimed_key_id(token),
            path=request.url.path,
        )
        raise ApiError(
            401, "unauthorized", _UNAUTHORIZED_REASON, headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


async def current_scope(principal: Annotated[Principal, Depends(current_principal)]) -> TenantScope:
    """The caller's tenant scope: what every index read of a request must take."""
    return principal.scope


async def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "this needs an admin key")
    return principal


async def require_operator(
    principal: Annotated[Principal, Depends(current_principal)],
) -> Principal:
    """For what spans every tenant (`/metrics` names them all)."""
    if not principal.is_operator:
        raise ApiError(403, "forbidden", "this needs the operator key (RAG_ADMIN_API_KEY)")
    return principal


async def target_scope(
    principal: Annotated[Principal, Depends(current_principal)],
    tenant: Annotated[
        str | None, Query(description="the operator key only: another tenant (default: the key's)")
    ] = None,
) -> TenantScope:
    """The tenant a route's `?tenant=` names, by `Principal.tenant_scope`'s rule."""
    return principal.tenant_scope(tenant)


async def admin_target_scope(
    principal: Annotated[Principal, Depends(require_admin)],
    target: Annotated[TenantScope, Depends(target_scope)],
) -> TenantScope:
    """`target_scope` for what changes a tenant's state: an admin key's (or the operator's)."""
    return target
