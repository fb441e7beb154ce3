"""Request and response bodies, as the OpenAPI docs at /docs show them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.index.schema import META_PREFIX
from core.settings import FLAT_NAMES, SECTIONS
from core.types import Role
from retrieval.search import SearchMode

Scalar = str | bool | int | float

# Payload fields the response lifts out of `metadata` or leaves out of it.
_TOP_LEVEL = ("doc_id", "source", "title", "text", "ordinal", "page")
_HIDDEN = ("tenant_id", "chunk_hash", "content_hash")


def _shipped(name: str) -> object:
    """A setting's shipped default, for the OpenAPI text only: the models are built at import,
    before any app's settings exist. Requests are resolved and checked against the settings the
    app was built with (`api.routes.search.to_search_request`)."""
    section, field = FLAT_NAMES[name]
    return SECTIONS[section].model_fields[field].default


class FilterCondition(BaseModel):
    """One condition on a metadata field; a request's conditions must all hold.

    Give exactly one of `eq`, `any`, or range bounds. Values are scalars, so filters nest no
    deeper than this object.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {"field": "doc_type", "eq": "pdf"},
                {"field": "author", "any": ["Ada", "Grace"]},
                {"field": "modified_at", "gte": "2024-01-01T00:00:00Z"},
                {"field": f"{META_PREFIX}year", "gte": 2020, "lt": 2024},
            ]
        },
    )

    field: str = Field(
        description="doc_id, source, doc_type, mime_type, author, title, size, modified_at, or "
        f"{META_PREFIX}<key> for sidecar metadata"
    )
    eq: Scalar | None = None
    any: list[Scalar] | None = None
    gte: float | str | None = Field(None, description="number, or ISO-8601 datetime")
    gt: float | str | None = None
    lte: float | str | None = None
    lt: float | str | None = None

    def operators(self) -> dict[str, Any]:
        """The operators given, including unknown ones (rejected later, naming the field)."""
        ops = {k: v for k, v in self.model_dump(exclude={"field"}).items() if v is not None}
        return {**ops, **(self.model_extra or {})}


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, description="at most max_query_chars characters")
    top_k: int | None = Field(
        None,
        ge=1,
        description=f"default search_top_k ({_shipped('search_top_k')}), at most max_top_k "
        f"({_shipped('max_top_k')})",
    )
    filters: list[FilterCondition] = Field(default_factory=list)
    mode: SearchMode = "hybrid"
    rerank: bool = False
    rerank_top_n: int | None = Field(
        None,
        ge=1,
        description=f"fused hits to rerank; default rerank_top_n ({_shipped('rerank_top_n')}), "
        f"at most max_rerank_top_n ({_shipped('max_rerank_top_n')})",
    )
    explain: bool = Field(
        False,
        description="in hybrid mode, also report each hit's rank in every leg (leg_ranks)",
    )


class AnswerBody(SearchBody):
    top_k: int | None = Field(
        None,
        ge=1,
        description=f"chunks given to the LLM; default answer_top_k ({_shipped('answer_top_k')}), "
        f"at most max_answer_top_k ({_shipped('max_answer_top_k')})",
    )


class ChunkResult(BaseModel):
    id: str
    doc_id: str
    source: str
    title: str | None = None
    ordinal: int | None = None
    page: int | None = Field(
        None, description="1-based page (PDF) or slide (PPTX) the chunk comes from; null otherwise"
    )
    text: str
    metadata: dict[str, Any]
    score: float = Field(description="fused RRF score; the leg's own score in dense/bm25 mode")
    leg_ranks: dict[str, int] = Field(
        description="1-based rank of this chunk in each leg that found it: always for single-leg "
        "modes and Python-fused legs (graph), for dense and BM25 fused alone only with `explain`"
    )
    rerank_score: float | None = None

    @classmethod
    def from_payload(
        cls,
        id: str,
        payload: dict[str, Any],
        score: float,
        leg_ranks: dict[str, int],
        rerank_score: float | None,
    ) -> ChunkResult:
        skip = (*_TOP_LEVEL, *_HIDDEN)
        return cls(
            id=id,
            doc_id=payload.get("doc_id", ""),
            source=payload.get("source", ""),
            title=payload.get("title"),
            ordinal=payload.get("ordinal"),
            page=payload.get("page"),
            text=payload.get("text", ""),
            metadata={k: v for k, v in payload.items() if k not in skip},
            score=score,
            leg_ranks=leg_ranks,
            rerank_score=rerank_score,
        )


class SearchResponse(BaseModel):
    query: str
    mode: SearchMode
    results: list[ChunkResult]
    timings_ms: dict[str, float] = Field(
        description="embed, engine, fetch/fuse and outside legs when used, rerank, total"
    )


class Citation(BaseModel):
    id: str
    doc_id: str
    source: str
    title: str | None = None
    page: int | None = Field(None, description="1-based page (PDF) or slide (PPTX); else null")


class AnswerResponse(BaseModel):
    query: str
    answer: str
    model: str
    citations: list[Citation]
    sources: list[ChunkResult]
    timings_ms: dict[str, float]


class DocumentOut(BaseModel):
    doc_id: str
    source: str
    status: str
    size: int
    modified_at: datetime | None
    chunks: int
    error: str
    attempts: int
    updated_at: datetime
    deleted_by: Literal["bucket", "api"] | None = Field(
        None,
        description="when deleted: `bucket` (the object left it) or `api` (an admin's DELETE; "
        "scans leave the object out until its content changes)",
    )
    metadata: dict[str, Any] | None = Field(
        None,
        description="the document's metadata (parser's and sidecar's, stored once per document); "
        "only when one document is fetched, not in listings",
    )


class DeletesConfirmed(BaseModel):
    tenant: str
    confirmed: int = Field(description="held deletes the next scan carries out")


class DocumentPage(BaseModel):
    documents: list[DocumentOut]
    next_after: str | None = Field(
        description="pass as `after` for the next page; null on the last"
    )


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str | None = Field(None, description="default: the calling key's tenant")
    role: Role = "reader"
    label: str = Field("", max_length=200)


class KeyOut(BaseModel):
    key_id: str
    tenant: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    key: str = Field(description="the API key; shown only now, store it safely")
    warning: str | None = Field(
        None,
        description="to the operator key only: why the tenant may be mistyped (it has no "
        "documents), naming the tenants that have; the key is created all the same",
    )


class RerankerOut(BaseModel):
    available: bool
    name: str
    reason: str


class LastRun(BaseModel):
    """The last ingestion run, its outcomes spelled out (documents each; as `rag status`)."""

    started_at: datetime
    finished_at: datetime | None  # null while a run of the workers is still reporting
    added: int
    modified: int
    deleted: int
    unchanged: int
    failed: int
    chunks_embedded: int  # chunks sent to the model; the rest came from the embedding cache
    seconds: float


class IndexOut(BaseModel):
    """The served index generation; counts across tenants, and the embedding model's folder, are
    shown to the operator key only."""

    generation: str | None  # the fingerprint id (`core.generation`)
    embedding_model: str | None
    chunk_size: int | None
    chunk_overlap: int | None
    indexed_percent: float = Field(
        description="of every tenant's chunks, the share in the vector index's graph (HNSW) as "
        "of its last build; the rest are searched exactly, more slowly"
    )
    chunks: int | None = Field(default=None, description="every tenant's chunks; operator only")
    indexed_chunks: int | None = Field(
        default=None, description="of those, the ones in the vector index's graph; operator only"
    )
    rebuild: dict[str, Any] | None = None  # target generation and progress while one runs


class StatusOut(BaseModel):
    """`ingest.status.status_json`, as `rag status --json` prints it, and what this process
    loaded."""

    tenant: str
    documents: dict[str, int] = Field(
        description="documents per state, for the states that have any"
    )
    index_chunks: int = Field(description="the tenant's chunks in the index")
    held_deletes: int = Field(
        description="deletes of this tenant the last scan held back (too many at once) until an "
        "admin confirms them with POST /v1/documents/confirm-deletes or the objects return"
    )
    scan_error: str | None = Field(
        description="why the last full scan failed (e.g. the bucket is unavailable), else null"
    )
    last_scan: dict[str, Any] | None = Field(
        description="the last full scan: when it started, what it enqueued, skipped and why it "
        "failed; for the operator key only"
    )
    last_run: LastRun | None = Field(
        description="the last ingestion run (it covers every tenant); for the operator key only"
    )
    reranker: RerankerOut
    llm_configured: bool
    search_modes: list[str] = Field(
        description="the search modes this server answers: hybrid, dense and bm25, and graph "
        "when the knowledge graph is enabled"
    )
    index: IndexOut


class EntityOut(BaseModel):
    key: str
    name: str
    type: str
    chunk_count: int  # chunks that mention it
    degree: int  # entities it is related to, in either direction


class EntityList(BaseModel):
    entities: list[EntityOut]


class NeighbourOut(EntityOut):
    hops: int
    score: float  # activation spread from the entity, see graph.traverse


class EdgeOut(BaseModel):
    source: str
    target: str
    type: str
    weight: float


class Neighbourhood(BaseModel):
    entity: EntityOut
    neighbors: list[NeighbourOut]
    edges: list[EdgeOut]  # relations among the entity and the neighbours listed
