"""`POST /v1/search` and `POST /v1/answer`.

Their blocking work (the query's embedding and the engine call, the reranking, the LLM's answer)
runs in the fair pools of `ApiState`, one per stage (`api.fairness`): a request waits on the
event loop, holding no thread, until its tenant's turn in the stage's pool comes, then runs in
one of the pool's threads. Served first come, first served by anyio's thread pool, as they were,
one tenant's flood of reranked searches queued every other tenant's searches behind it (issue
23, finding 2). The endpoints are `async` for that; the key check and the audit line, quick
appends and reads, run on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from api.auth import Principal, current_principal
from api.errors import ApiError
from api.schemas import (
    AnswerBody,
    AnswerResponse,
    ChunkResult,
    Citation,
    SearchBody,
    SearchResponse,
)
from api.state import ApiState, api_state
from core.llm import Answer, ChatClient, LlmError, Source, answer_from_sources
from core.settings import Settings
from core.types import TenantScope
from retrieval.filters import FilterError, FilterLimits, to_field_filters
from retrieval.rerank import RerankerError, RerankerStatus
from retrieval.search import (
    RankedChunk,
    SearchRequest,
    SearchResult,
    SearchService,
    SearchUnavailableError,
)

router = APIRouter(prefix="/v1", tags=["search"])
State = Annotated[ApiState, Depends(api_state)]
Caller = Annotated[Principal, Depends(current_principal)]


def to_search_request(body: SearchBody, s: Settings) -> SearchRequest:
    """Apply the request limits from settings and translate the filters; 422 names the field."""
    if len(body.query) > s.api.max_query_chars:
        raise ApiError(
            422,
            "query_too_long",
            f"query is limited to {s.api.max_query_chars} characters",
            "query",
        )
    if not body.query.strip():
        raise ApiError(422, "empty_query", "query is blank", "query")
    top_k = requested_top_k(body, s)
    most = s.api.max_answer_top_k if isinstance(body, AnswerBody) else s.api.max_top_k
    if top_k > most:
        raise ApiError(422, "invalid_request", f"top_k is limited to {most}", "top_k")
    top_n = body.rerank_top_n or s.retrieval.rerank_top_n
    if top_n > s.api.max_rerank_top_n:
        raise ApiError(
            422,
            "invalid_request",
            f"rerank_top_n is limited to {s.api.max_rerank_top_n}",
            "rerank_top_n",
        )
    try:
        filters = to_field_filters(
            [(c.field, c.operators()) for c in body.filters],
            FilterLimits(s.api.max_filters, s.api.max_filter_values),
        )
    except FilterError as exc:
        raise ApiError(422, "invalid_filter", exc.reason, exc.field) from None
    return SearchRequest(body.query, top_k, body.mode, filters, body.rerank, top_n, body.explain)


def requested_top_k(body: SearchBody, s: Settings) -> int:
    """The body's top_k, or the settings' default for its route."""
    if body.top_k is not None:
        return body.top_k
    return s.retrieval.answer_top_k if isinstance(body, AnswerBody) else s.retrieval.search_top_k


def search_or_error(
    service: SearchService, reranker: RerankerStatus, scope: TenantScope, req: SearchRequest
) -> SearchResult:
    """The search in one go, its failures as `ApiError`s: `rag search`'s."""
    with _search_errors(reranker):
        return service.search(scope, req)


async def fair_search(state: ApiState, caller: Principal, req: SearchRequest) -> SearchResult:
    """The search in the fair pools: its retrieval (charged 1), then, if asked, its reranking
    (charged a candidate each), each stage waiting for the caller's tenant's turn in its own
    pool, so a plain search never queues behind reranking."""
    tenant = caller.tenant_id
    found = await state.retrieval_work.run(tenant, 1, _retrieve, state, caller.scope, req)
    if req.rerank:
        found = await state.rerank_work.run(tenant, len(found.chunks), _rerank, state, req, found)
    state.metrics.observe_stages(found.timings_ms)
    return found


def _retrieve(state: ApiState, scope: TenantScope, req: SearchRequest) -> SearchResult:
    with _search_errors(state.reranker):
        return state.search.retrieve(scope, req)


def _rerank(state: ApiState, req: SearchRequest, found: SearchResult) -> SearchResult:
    with _search_errors(state.reranker):
        return state.search.rerank(req, found)


@contextmanager
def _search_errors(reranker: RerankerStatus) -> Iterator[None]:
    """A search's failures as `ApiError`s."""
    try:
        yield
    except SearchUnavailableError as exc:
        reason = exc.reason
        if exc.code == "reranker_unavailable" and reranker.public_reason:
            reason = f"{reason}: {reranker.public_reason}"
        field = "rerank" if exc.code == "reranker_unavailable" else "mode"
        raise ApiError(400, exc.code, reason, field) from None
    except RerankerError as exc:
        if exc.busy:
            raise ApiError(503, "reranker_busy", str(exc)) from None
        raise ApiError(502, "reranker_failed", str(exc)) from None


def search_response(body: SearchBody, result: SearchResult) -> SearchResponse:
    """The body of `POST /v1/search`, also what `rag search --json` prints."""
    return SearchResponse(
        query=body.query,
        mode=body.mode,
        results=[_result(c) for c in result.chunks],
        timings_ms=result.timings_ms,
    )


@dataclass
class _Outcome:
    hits: int = 0


@asynccontextmanager
async def _audited(
    state: ApiState, caller: Principal, route: str, body: SearchBody
) -> AsyncIterator[_Outcome]:
    """Logs the request to the audit trail however it ends: answered, refused or failed."""
    outcome, status = _Outcome(), 500
    try:
        yield outcome
        status = 200
    except ApiError as exc:
        status = exc.status
        raise
    finally:
        # On the event loop, as the key check's refusals are: one appended line, where a hop to
        # the default thread pool would queue first come, first served behind other routes.
        state.audit.search(
            route=route,
            key_id=caller.key_id,
            tenant_id=caller.tenant_id,
            query=body.query,
            mode=body.mode,
            top_k=requested_top_k(body, state.runtime.settings),
            filter_fields=[c.field for c in body.filters],
            status=status,
            hits=outcome.hits,
        )


def sources_of(chunks: list[RankedChunk]) -> list[Source]:
    """Retrieved chunks as the answer prompt's sources."""
    return [Source(c.id, str(c.payload.get("text", ""))) for c in chunks]


def _ask(llm: ChatClient, query: str, chunks: list[RankedChunk]) -> tuple[Answer, float]:
    """The LLM's answer from the chunks, and the milliseconds it took."""
    start = time.perf_counter()
    try:
        reply = answer_from_sources(llm, query, sources_of(chunks))
    except LlmError as exc:
        raise ApiError(502, "llm_failed", str(exc)) from None
    return reply, (time.perf_counter() - start) * 1000


def _result(c: RankedChunk) -> ChunkResult:
    return ChunkResult.from_payload(c.id, c.payload, c.score, c.leg_ranks, c.rerank_score)


_SEARCH_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the mode or reranking asked for is not available on this server"},
    502: {"description": "the remote reranker (Cohere) failed"},
    503: {
        "description": "the server is at RAG_API_MAX_INFLIGHT requests, or the key's tenant at "
        "RAG_API_MAX_INFLIGHT_PER_TENANT, or the remote reranker (Cohere) is rate-limiting, "
        "overloaded or out of reach; retry later"
    },
}


@router.post("/search", response_model=SearchResponse, responses=_SEARCH_ERRORS)
async def search(body: SearchBody, state: State, caller: Caller) -> SearchResponse:
    """Hybrid (dense + BM25, RRF), single-leg or graph search over the caller's tenant."""
    async with _audited(state, caller, "search", body) as outcome:
        req = to_search_request(body, state.runtime.settings)
        result = await fair_search(state, caller, req)
        outcome.hits = len(result.chunks)
    return search_response(body, result)


@router.post(
    "/answer",
    response_model=AnswerResponse,
    responses={
        **_SEARCH_ERRORS,
        502: {"description": "the LLM or the remote reranker failed"},
        503: {
            "description": "no LLM endpoint is configured, the server is at its limit, or the "
            "remote reranker (Cohere) is rate-limiting, overloaded or out of reach"
        },
    },
)
async def answer(body: AnswerBody, state: State, caller: Caller) -> AnswerResponse:
    """Retrieve, then answer from the retrieved chunks with citations to their ids."""
    async with _audited(state, caller, "answer", body) as outcome:
        if state.llm is None:
            raise ApiError(
                503,
                "llm_unavailable",
                "no LLM is configured; set RAG_LLM_BASE_URL (and RAG_LLM_MODEL, RAG_LLM_API_KEY) "
                "to an OpenAI-compatible endpoint",
            )
        req = to_search_request(body, state.runtime.settings)
        result = await fair_search(state, caller, req)
        outcome.hits = len(result.chunks)
        reply, llm_ms = await state.llm_work.run(
            caller.tenant_id, 1, _ask, state.llm, body.query, result.chunks
        )
    timings = {**result.timings_ms, "llm": llm_ms}
    state.metrics.observe_stages({"llm": timings["llm"]})
    by_id = {c.id: c for c in result.chunks}
    return AnswerResponse(
        query=body.query,
        answer=reply.text,
        model=reply.model,
        citations=[
            Citation(
                id=i,
                doc_id=by_id[i].payload.get("doc_id", ""),
                source=by_id[i].payload.get("source", ""),
                title=by_id[i].payload.get("title"),
                page=by_id[i].payload.get("page"),
            )
            for i in reply.citations
        ],
        sources=[_result(c) for c in result.chunks],
        timings_ms=timings,
    )
