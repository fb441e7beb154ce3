"""The FastAPI application: built around one `serving.platform.Platform`, opened once.

The lifespan loads the embedding model, the reranker and the index in a worker thread (so start-up
never blocks the event loop), sizes anyio's thread pool for the sync endpoints (searches and
answers have fair pools of their own, `api.fairness`), and on shutdown closes everything, which
flushes the embedded shard and releases its lock.

Every route is in `api/routes/` (the graph's only when `RAG_GRAPH_ENABLED` is on); `extra_routers`
adds lifespans (`rag up` runs its worker pool in one). The ranking sources and the LLM client are
the platform's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, FastAPI

from api.audit import AuditLog
from api.auth import KeyStore
from api.errors import install_error_handlers
from api.fairness import FairScheduler
from api.limits import BodyLimitMiddleware, LoadShedMiddleware, key_tenant
from api.metrics import Metrics, MetricsMiddleware
from api.openapi import install_docs
from api.routes import documents, evaluation, graph, keys, ops, search
from api.state import ApiState
from core.types import TenantScope
from eval.evaluation_store import EvaluationStore
from eval.history import latest_gauges
from eval.links import ReportLinks
from serving.platform import Platform


def _start(platform: Platform, metrics: Metrics) -> ApiState:
    s = platform.settings
    links = ReportLinks.open(s)  # first: a short or empty link secret stops the start at once
    index = platform.runtime.index
    platform.runtime.manifest  # noqa: B018 - open it now, not on the first request
    # Built now, not by the first requests, which would race to build them.
    platform.served_search.announce_reranker()  # the model, and one line on the reranker
    platform.llm  # noqa: B018
    platform.listeners  # noqa: B018 - told of an admin's delete
    keys = KeyStore.open(s)
    EvaluationStore.open(s).close()  # an earlier release's report folders imported now, once
    state = ApiState(
        platform=platform,
        keys=keys,
        metrics=metrics,
        audit=AuditLog(
            s.audit_log_path, s.api.audit_log_queries, s.api.audit_refusals_per_client_per_minute
        ),
        links=links,
        retrieval_work=FairScheduler(s.api.search_slots),
        rerank_work=FairScheduler(s.api.rerank_slots),
        llm_work=FairScheduler(s.api.llm_slots),
    )

    def index_sizes() -> dict[str, int]:
        tenants = keys.tenants() | {s.default_tenant}
        return {t: index.count(TenantScope(t)) for t in tenants}

    metrics.track_index_sizes(index_sizes)

    def evaluation_gauges() -> list[tuple[str, str, float, bool]]:
        store = EvaluationStore.open(s)
        try:
            return latest_gauges(store)
        finally:
            store.close()

    metrics.track_evaluations(evaluation_gauges)
    return state


def create_app(platform: Platform, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The API over `platform`, which it closes on shutdown."""
    s = platform.settings
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = s.api.threads
        state = await anyio.to_thread.run_sync(_start, platform, metrics)
        app.state.api = state
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(state.close)

    app = FastAPI(
        title="RAG platform",
        summary="Hybrid search (dense + BM25, RRF), reranking and grounded answers per tenant.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # install_docs serves them without a CDN
        redoc_url=None,
    )
    app.state.runtime = platform.runtime
    install_error_handlers(app, s.api.retry_after_seconds)
    routers = [search.router, documents.router, keys.router, ops.router, evaluation.router]
    if s.graph.enabled:
        routers.append(graph.router)
    for router in (*routers, *extra_routers):
        app.include_router(router)
    install_docs(app)
    # Inside the body limit, so only complete requests are counted; the last added runs first.
    app.add_middleware(
        LoadShedMiddleware,
        max_inflight=s.api.max_inflight,
        max_inflight_per_tenant=s.api.max_inflight_per_tenant,
        retry_after_seconds=s.api.retry_after_seconds,
        tenant_of=key_tenant,
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=s.api.max_body_bytes,
        timeout_seconds=s.api.body_timeout_seconds,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # counts the 408s, 413s and 503s too
    return app
