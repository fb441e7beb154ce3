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
from serving.platform import Platform


@dataclass
class ApiState:
    platform: Platform
    keys: KeyStore
    metrics: Metrics
    audit: AuditLog

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
        self.keys.close()
        self.platform.close()


async def api_state(request: Request) -> ApiState:
    """Async because it only reads: FastAPI runs sync dependencies in the thread pool."""
    return request.app.state.api
