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
from typing import Annotated, get_args

from fastapi import Depends, Query, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import (
    Column,
    Double,
    Engine,
    MetaData,
    Table,
    Text,
    bindparam,
    select,
    update,
)

from api.errors import ApiError
from core.settings import Settings
from core.state.database import reading, release, store_engine
from core.state.stores import KEYS
from core.types import InvalidTenantError, Role, TenantScope, is_tenant_id

BOOTSTRAP_KEY_ID = "bootstrap"

_PREFIX = "rag"
# The key store's tables (core/state/migrations/keys/ makes and upgrades them).
API_KEYS = Table(
    "api_keys",
    MetaData(),
    Column("key_id", Text, primary_key=True),
    Column("tenant_id", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("label", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("revoked_at", Double),
)
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
# Built once: every request runs it, and building a statement costs more than running it.
_VERIFY = select(
    API_KEYS.c.tenant_id, API_KEYS.c.role, API_KEYS.c.secret_hash, API_KEYS.c.revoked_at
).where(API_KEYS.c.key_id == bindparam("key_id"))
_LISTED = [API_KEYS.c[name] for name in ("key_id", "tenant_id", "role", "label")] + [
    API_KEYS.c.created_at,
    API_KEYS.c.revoked_at,
]


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


class KeyStore:
    """Hashed API keys in the state database (a SQLite file beside the manifest by default, or
    PostgreSQL, where a key minted or revoked on one host holds on every other at its next
    request)."""

    def __init__(self, engine: Engine, bootstrap: tuple[str, TenantScope] | None = None) -> None:
        self._engine = engine
        self._bootstrap_hash = _digest(bootstrap[0]) if bootstrap else _DUMMY_HASH
        self._bootstrap_scope = bootstrap[1] if bootstrap else None

    @classmethod
    def open(cls, settings: Settings) -> KeyStore:
        admin = settings.api.admin_api_key
        bootstrap = (
            (admin.get_secret_value(), TenantScope(settings.default_tenant)) if admin else None
        )
        return cls(store_engine(settings, KEYS), bootstrap)

    def create(self, tenant: TenantScope, role: Role, label: str = "") -> tuple[str, KeyInfo]:
        """A new key; the returned string is the only time its secret exists outside a hash."""
        if role not in get_args(Role):
            raise ValueError(f"role must be one of {', '.join(get_args(Role))}")
        check_label(label)
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        info = KeyInfo(key_id, tenant.tenant_id, role, label, time.time(), None)
        with self._engine.begin() as conn:
            conn.execute(
                API_KEYS.insert().values(
                    key_id=key_id,
                    tenant_id=tenant.tenant_id,
                    role=role,
                    secret_hash=_digest(secret),
                    label=label,
                    created_at=info.created_at,
                )
            )
        return f"{_PREFIX}_{key_id}_{secret}", info

    def verify(self, token: str) -> Principal | None:
        """The key's principal, or None; the same work whether or not the key exists."""
        bootstrap_ok = hmac.compare_digest(_digest(token), self._bootstrap_hash)
        key_id, secret = _split_token(token)
        with reading(self._engine) as conn:
            row = conn.execute(_VERIFY, {"key_id": key_id}).first()
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
        query = select(*_LISTED).order_by(API_KEYS.c.created_at)
        if tenant is not None:
            query = query.where(API_KEYS.c.tenant_id == tenant.tenant_id)
        with reading(self._engine) as conn:
            return [KeyInfo(*row) for row in conn.execute(query)]

    def revoke(self, key_id: str, tenant: TenantScope | None = None) -> bool:
        """Revoke a live key (only if it is `tenant`'s, when given); False if there is none."""
        keys = API_KEYS.c
        query = (
            update(API_KEYS)
            .where(keys.key_id == key_id, keys.revoked_at.is_(None))
            .values(revoked_at=time.time())
        )
        if tenant is not None:
            query = query.where(keys.tenant_id == tenant.tenant_id)
        with self._engine.begin() as conn:
            return conn.execute(query).rowcount > 0

    def tenants(self) -> set[str]:
        """Tenants with a live key: the ones that can reach the API."""
        keys = API_KEYS.c
        query = select(keys.tenant_id).where(keys.revoked_at.is_(None)).distinct()
        with reading(self._engine) as conn:
            return {tenant for (tenant,) in conn.execute(query) if is_tenant_id(tenant)}

    def close(self) -> None:
        release(self._engine)


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
