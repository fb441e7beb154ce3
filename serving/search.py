"""The one builder of the served `SearchService`: index, embedder, reranker, graph leg, settings.

`/v1/search`, `rag search` and `rag eval` all search through what `build_search` returns (as
`serving.platform.Platform.search`), so a mode, a rerank or a filter behaves the same from the
API, the command line and the report.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from core.runtime import Runtime
from retrieval.hybrid import RetrievalConfig
from retrieval.rerank import RerankerStatus, load_reranker
from retrieval.search import Leg, SearchService

log = logging.getLogger(__name__)


@dataclass
class ServedSearch:
    service: SearchService
    reranker: RerankerStatus  # why there is no reranker, when there is none

    def close(self) -> None:
        close_reranker = getattr(self.reranker.reranker, "close", None)
        if close_reranker is not None:
            close_reranker()


def build_search(
    runtime: Runtime, legs: Sequence[Leg], transport: httpx.BaseTransport | None = None
) -> ServedSearch:
    """`legs` are the ranking sources outside the engine (the graph's, `Platform.legs`);
    `transport` replaces the network for Cohere (tests)."""
    s = runtime.settings
    reranker = load_reranker(s, transport)
    if reranker.available:
        log.info("reranker loaded: %s", reranker.name)
    else:
        log.warning("reranking is unavailable: %s", reranker.reason)
    service = SearchService(
        runtime.index,
        runtime.embedder,
        RetrievalConfig(s.retrieval.candidates_per_leg, s.retrieval.rrf_k),
        legs,
        reranker.reranker,
        legs_in_hybrid=s.graph.in_hybrid,
    )
    return ServedSearch(service, reranker)
