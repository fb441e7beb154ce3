"""What the lifespan builds once and every request shares: `request.app.state.api`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request
from redis import Redis

from api.audit import AuditLog
from api.auth import KeyStore
from api.fairness import FairScheduler
from api.metrics import Metrics
from core.llm import ChatClient
from core.runtime import Runtime
from eval.links import ReportLinks
from retrieval.rerank import RerankerStatus
from retrieval.search import SearchService
from serving.platform import Platform


@dataclass
class ApiState:
    platform: Platform
    keys: KeyStore
    metrics: Metrics
    audit: AuditLog
    links: ReportLinks
    # The fair pools of searches' and answers' blocking work, one per stage (RAG_API_*_SLOTS).
    retrieval_work: FairScheduler
    rerank_work: FairScheduler
    llm_work: FairScheduler
    _redis: Redis | None = field(default=None, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def redis(self) -> Redis:
        """The workers' Redis, for the per-document lock (`core.locks`)."""
        from core.locks import redis_client

        with self._guard:
            if self._redis is None:
                self._redis = redis_client(self.runtime.settings.redis_url)
            return self._redis

    @property
    def runtime(self) -> Runtime:
        return self.platform.runtime

    @property
    def search(self) -> SearchService:
        return self.platform.search

    @property
    def reranker(self) -> RerankerStatus:
        return self.platform.served_search.reranker

    @property
    def llm(self) -> ChatClient | None:
        return self.platform.llm

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        self.keys.close()
        self.platform.close()


async def api_state(request: Request) -> ApiState:
    """Async because it only reads: FastAPI runs sync dependencies in the thread pool."""
    return request.app.state.api
