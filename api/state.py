"""What the lifespan builds once and every request shares: `request.app.state.api`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request
from redis import Redis

from api.audit import AuditLog
from api.auth import KeyStore
from api.metrics import Metrics
from core.llm import ChatClient
from core.runtime import Runtime
from ingest.service import Ingestion, open_bucket
from retrieval.rerank import RerankerStatus
from retrieval.search import SearchService


@dataclass
class ApiState:
    runtime: Runtime
    keys: KeyStore
    search: SearchService
    reranker: RerankerStatus
    llm: ChatClient | None
    metrics: Metrics
    audit: AuditLog
    _ingestion: Ingestion | None = field(default=None, init=False, repr=False)
    _redis: Redis | None = field(default=None, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def ingestion(self) -> Ingestion:
        """The bucket's syncer, listeners and all, as the workers build it: the API's deletes go
        through it. Built on the first delete, so a server that never deletes never opens the
        bucket."""
        with self._guard:
            if self._ingestion is None:
                s = self.runtime.settings
                self._ingestion = Ingestion(self.runtime, open_bucket(s.bucket_url, s))
            return self._ingestion

    def redis(self) -> Redis:
        """The workers' Redis, for the per-document lock (`workers.locks`)."""
        from workers.locks import redis_client  # `workers` builds the Celery app: on use only

        with self._guard:
            if self._redis is None:
                self._redis = redis_client(self.runtime.settings.redis_url)
            return self._redis

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
        if self.llm is not None:
            self.llm.close()
        close_reranker = getattr(self.reranker.reranker, "close", None)
        if close_reranker is not None:
            close_reranker()
        self.keys.close()
        self.runtime.close()


async def api_state(request: Request) -> ApiState:
    """Async because it only reads: FastAPI runs sync dependencies in the thread pool."""
    return request.app.state.api
