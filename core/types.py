"""Plain data passed between ingestion, the index and retrieval."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

# Names that become folder names, payload keys and filter fields: matched as whole strings
# (`fullmatch`), since `$` also matches before a final newline and would let "acme\n" through.
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TENANT_ID_RULE = "letters, digits, '-' and '_', 1-64 characters, starting with a letter or digit"
_META_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
META_KEY_RULE = "letters, digits and '_', 1-64 characters, not starting with a digit"
_POINT_NAMESPACE = uuid.UUID("6f1c2a3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b")


# What an API key may do within its tenant (api.auth); here so that `rag keys` can name the roles
# without importing the API.
Role = Literal["reader", "admin"]


class InvalidTenantError(ValueError):
    """A tenant id that could widen or escape a tenant scope (empty, wildcard, path-like)."""


def is_tenant_id(value: object) -> bool:
    """Whether `value` is a tenant id: the one rule for tenant folders, keys and scopes."""
    return isinstance(value, str) and _TENANT_ID.fullmatch(value) is not None


def is_meta_key(value: object) -> bool:
    """Whether `value` is a metadata key: what a sidecar may set and a `meta.<key>` filter name."""
    return isinstance(value, str) and _META_KEY.fullmatch(value) is not None


@dataclass(frozen=True)
class TenantScope:
    """The tenant every index read is confined to.

    Queries take a scope rather than a tenant string so that an unscoped query cannot be
    expressed: the scope validates its id once, and the index turns it into a must-filter.
    """

    tenant_id: str

    def __post_init__(self) -> None:
        if not is_tenant_id(self.tenant_id):
            raise InvalidTenantError(f"invalid tenant id {self.tenant_id!r}: {TENANT_ID_RULE}")


def chunk_point_id(tenant_id: str, doc_id: str, chunk_hash: str) -> str:
    """Deterministic point id, so re-ingesting the same chunk overwrites instead of duplicating."""
    return str(uuid.uuid5(_POINT_NAMESPACE, f"{tenant_id}\x1f{doc_id}\x1f{chunk_hash}"))


@dataclass(frozen=True)
class IndexedChunk:
    """One point to write: id, dense vector and the payload that BM25 and filters read."""

    id: str
    vector: np.ndarray
    payload: dict[str, Any]


@dataclass
class Hit:
    """One ranked chunk from the index; `leg_ranks` tells which leg found it at which rank."""

    id: str
    score: float
    payload: dict[str, Any]
    leg_ranks: dict[str, int] = field(default_factory=dict)
