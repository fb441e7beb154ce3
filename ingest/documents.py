"""Turn one bucket object (and its optional sidecar) into chunks ready to embed.

Everything that decides *what* a document is lives here: its tenant (from the path, never from
its content or sidecar), its metadata, its chunks and the payload each chunk carries.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from core.embedding import Embedder
from core.manifest import NO_TENANT
from core.settings import IngestSettings, Settings
from core.types import (
    META_KEY_RULE,
    TENANT_ID_RULE,
    TenantScope,
    chunk_point_id,
    is_meta_key,
    is_tenant_id,
)
from ingest.bucket import ObjectInfo, sha256
from ingest.chunking import Chunk, ChunkedDocument, Chunker
from ingest.isolation import ParseBudget, ParserPool, ParserStartError, shared_pool
from ingest.parsers import ParseError, parse_document

log = logging.getLogger(__name__)
# Sidecar keys that would let a file claim another tenant or overwrite system fields.
_RESERVED_META = frozenset({"tenant_id", "tenant", "doc_id", "text", "chunk_hash", "content_hash"})
# Sidecar keys promoted to top-level, indexed payload fields.
_PROMOTED_META = ("title", "author")


class DocumentError(ValueError):
    """Why a document was quarantined; `reason` is shown in status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def tenant_of(key: str, default_tenant: str) -> TenantScope:
    """`tenants/<id>/...` belongs to tenant <id>; every other key to the default tenant.

    The one place that decides a key's tenant. A key under `tenants/` whose folder is not a tenant
    id (`ac.me`, `acme\\n`, the empty folder of `tenants//x.txt`) belongs to no tenant: it raises
    DocumentError with the reason its document is quarantined, naming the folder and the rule.
    The key is split on `/` as written, so an empty folder is not collapsed into the default
    tenant's path.
    """
    segments = key.split("/")
    if len(segments) < 3 or segments[0] != "tenants":
        return TenantScope(default_tenant)
    folder = segments[1]
    if not is_tenant_id(folder):
        raise DocumentError(f"tenant folder {folder!r} is not a valid tenant id: {TENANT_ID_RULE}")
    return TenantScope(folder)


def tenant_id_of(key: str, default_tenant: str) -> str:
    """`tenant_of` for records and per-tenant counts, which must not fail on a key: its tenant's
    id, or NO_TENANT for a key whose tenant folder is not a tenant id."""
    try:
        return tenant_of(key, default_tenant).tenant_id
    except DocumentError:
        return NO_TENANT


def parse_sidecar(data: bytes | None, max_bytes: int) -> dict[str, Any]:
    """User metadata: a flat JSON object of scalars or lists of scalars."""
    if data is None:
        return {}
    if len(data) > max_bytes:
        raise DocumentError(
            f"sidecar metadata is {len(data)} bytes, over the limit of {max_bytes} "
            "(RAG_MAX_SIDECAR_BYTES)"
        )
    try:
        meta = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DocumentError(f"sidecar metadata is not valid JSON: {exc}") from None
    except RecursionError:
        raise DocumentError("sidecar metadata is too deeply nested") from None
    if not isinstance(meta, dict):
        raise DocumentError("sidecar metadata must be a JSON object")
    for key, value in meta.items():
        if key in _RESERVED_META:
            raise DocumentError(
                f"sidecar metadata may not set {key!r}: a document's tenant and identity come "
                "from its path"
            )
        if not is_meta_key(key):
            raise DocumentError(
                f"sidecar metadata key {key!r} is not a plain identifier: {META_KEY_RULE}"
            )
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str | int | float | bool) for v in values):
            raise DocumentError(f"sidecar metadata {key!r} must be a scalar or a list of scalars")
    return meta


@dataclass(frozen=True)
class MetaLimits:
    """How much of a document's metadata each chunk carries (the rest is document-level only)."""

    max_sidecar_bytes: int
    filter_value_chars: int
    max_chunk_meta_bytes: int

    @classmethod
    def from_settings(cls, ingest: IngestSettings) -> MetaLimits:
        return cls(
            ingest.max_sidecar_bytes, ingest.meta_filter_value_chars, ingest.max_chunk_meta_bytes
        )


def _filterable(value: object, max_chars: int) -> bool:
    values = value if isinstance(value, list) else [value]
    return all(not isinstance(v, str) or len(v) <= max_chars for v in values)


def chunk_meta(meta: dict[str, Any], limits: MetaLimits) -> dict[str, Any]:
    """The metadata every chunk carries so `meta.<key>` filters work: short values, in key order,
    up to the per-chunk byte budget. Copying all of it would multiply a document's metadata by
    its chunk count (a 63 KB sidecar on a 320 KB text grew the shard from 0.85 MB to 47 MB)."""
    kept: dict[str, Any] = {}
    size = 2  # the braces of the JSON object
    for key, value in meta.items():
        if not _filterable(value, limits.filter_value_chars):
            continue
        cost = len(json.dumps({key: value}, ensure_ascii=False).encode()) - 1
        if size + cost > limits.max_chunk_meta_bytes:
            continue
        kept[key] = value
        size += cost
    return kept


@dataclass(frozen=True)
class PreparedDocument:
    doc_id: str
    scope: TenantScope
    content_hash: str
    meta_hash: str
    chunks: list[Chunk]
    base_payload: dict[str, Any]
    meta: dict[str, Any]  # all of the document's metadata, stored once in its manifest record

    def point_id(self, chunk: Chunk) -> str:
        return chunk_point_id(self.scope.tenant_id, self.doc_id, chunk.hash)

    def payload(self, chunk: Chunk) -> dict[str, Any]:
        payload = {
            **self.base_payload,
            "chunk_hash": chunk.hash,
            "ordinal": chunk.ordinal,
            "text": chunk.text,
        }
        if chunk.page is not None:
            payload["page"] = chunk.page
        return payload


class DocumentBuilder:
    """Parses, chunks and describes a document; raises DocumentError for anything unusable."""

    def __init__(
        self,
        chunker: Chunker,
        default_tenant: str,
        meta_limits: MetaLimits,
        isolated: ParserPool | None = None,
    ) -> None:
        """`isolated`: the pool of `ingest.isolation` that parses and chunks each document within
        its budgets, in production; without one, both run in this process."""
        self._chunker = chunker
        self._default_tenant = default_tenant
        self._isolated = isolated
        self.meta_limits = meta_limits

    @classmethod
    def served(cls, settings: Settings, embedder: Embedder) -> DocumentBuilder:
        """How ingestion and rebuilds alike turn documents into chunks of `embedder`'s tokens:
        the configured chunking and metadata limits, parsing and chunking in the budgeted
        process pool."""
        s = settings
        budget = ParseBudget(
            s.ingest.parse_timeout_seconds,
            s.ingest.parse_max_expanded_bytes,
            s.ingest.parse_memory_mb,
            s.ingest.parse_niceness,
        )
        return cls(
            Chunker.for_embedder(embedder, s.ingest.chunk_size, s.ingest.chunk_overlap),
            s.default_tenant,
            MetaLimits.from_settings(s.ingest),
            shared_pool(s.ingest.parse_processes, budget),
        )

    def build(
        self, obj: ObjectInfo, uri: str, data: bytes, content_hash: str, sidecar: bytes | None
    ) -> PreparedDocument:
        """The document ready to embed, or DocumentError with the reason it is unusable.

        Parsing hostile bytes can fail in ways no parser documents; whatever the bytes do, the
        outcome is this document quarantined with a reason, never a failed batch or worker. A
        parser process that could not start (ParserStartError) is no fault of the bytes: it is
        raised for the caller to try again later.
        """
        try:
            return self._build(obj, uri, data, content_hash, sidecar)
        except (DocumentError, ParserStartError):
            raise
        except Exception as exc:
            log.warning("unexpected error building %r", obj.key, exc_info=True)
            detail = f"{type(exc).__name__}: {str(exc)[:200]}"
            raise DocumentError(f"could not read the document ({detail})") from None

    def _read(self, key: str, data: bytes) -> ChunkedDocument:
        if self._isolated is None:
            return self._chunker.chunk_document(parse_document(key, data))
        return self._isolated.read(key, data, self._chunker)

    def _build(
        self, obj: ObjectInfo, uri: str, data: bytes, content_hash: str, sidecar: bytes | None
    ) -> PreparedDocument:
        scope = tenant_of(obj.key, self._default_tenant)
        meta = parse_sidecar(sidecar, self.meta_limits.max_sidecar_bytes)
        try:
            parsed = self._read(obj.key, data)
        except ParseError as exc:
            raise DocumentError(exc.reason) from None
        chunks = parsed.chunks
        if not chunks:
            raise DocumentError("no extractable text")
        suffix = PurePosixPath(obj.key).suffix.lower().lstrip(".")
        document_meta = {**parsed.metadata, **meta}
        payload: dict[str, Any] = {
            "tenant_id": scope.tenant_id,
            "doc_id": obj.key,
            "source": uri,
            "title": parsed.title,
            "doc_type": suffix,
            "mime_type": parsed.mime_type,
            "size": obj.size,
            "modified_at": datetime.fromtimestamp(obj.mtime, UTC).isoformat(),
            "content_hash": content_hash,
            "meta": chunk_meta(document_meta, self.meta_limits),
        }
        for key in _PROMOTED_META:
            value = meta.get(key, parsed.metadata.get(key))
            if isinstance(value, str):
                payload[key] = value
        return PreparedDocument(
            doc_id=obj.key,
            scope=scope,
            content_hash=content_hash,
            meta_hash=sha256(sidecar) if sidecar is not None else "",
            chunks=chunks,
            base_payload=payload,
            meta=document_meta,
        )
