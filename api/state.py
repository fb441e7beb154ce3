"""What the lifespan builds once and every request shares: `request.app.state.api`."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from api.audit import AuditLog
from api.auth import KeyStore
from api.metrics import Metrics
from core.llm import ChatClient
from core.runtime import Runtime
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

    def close(self) -> None:
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
