"""The one builder of the served `SearchService`: index, embedder, reranker, graph leg, settings.

`/v1/search`, `rag search` and `rag eval` all search through what `build_search` returns (as
`serving.platform.Platform.search`), so a mode, a rerank or a filter behaves the same from the
API, the command line and the report.

The reranker is loaded when first needed: a server loads it at start-up and says once whether
reranking is available (`ServedSearch.announce_reranker`); `rag search` without `--rerank`, or an
evaluation that does not rerank, neither loads a cross-encoder nor reports that none loads.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from core.runtime import Runtime
from core.settings import Settings
from retrieval.hybrid import RetrievalConfig
from retrieval.rerank import Reranker, RerankerStatus, load_reranker
from retrieval.search import Leg, SearchService

log = logging.getLogger(__name__)


class OnDemandReranker:
    """The configured reranker, loaded by the first caller that needs it (a request asking for
    reranking, `/v1/status`, a server's start-up), once per process; safe across threads."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None) -> None:
        self._settings = settings
        self._transport = transport
        self._status: RerankerStatus | None = None
        self._loading = threading.Lock()

    @property
    def status(self) -> RerankerStatus:
        """The reranker, or why there is none."""
        with self._loading:
            if self._status is None:
                self._status = load_reranker(self._settings, self._transport)
            return self._status

    def __call__(self) -> Reranker | None:
        """What `SearchService` asks for when a request reranks."""
        return self.status.reranker

    def close(self) -> None:
        """Release a loaded reranker's client; one never loaded is left alone."""
        with self._loading:
            loaded = self._status.reranker if self._status is not None else None
        close_reranker = getattr(loaded, "close", None)
        if close_reranker is not None:
            close_reranker()


@dataclass
class ServedSearch:
    service: SearchService
    on_demand: OnDemandReranker

    @property
    def reranker(self) -> RerankerStatus:
        """The reranker, or why there is none (loads it on first use)."""
        return self.on_demand.status

    def announce_reranker(self) -> None:
        """Load the reranker now and say in one log line whether reranking is available: at a
        server's start-up, so the operator hears it once, and not from every search."""
        status = self.reranker
        if status.available:
            log.info("reranker loaded: %s", status.name)
        else:
            log.warning("reranking is unavailable: %s", status.reason)

    def close(self) -> None:
        self.on_demand.close()


def build_search(
    runtime: Runtime, legs: Sequence[Leg], transport: httpx.BaseTransport | None = None
) -> ServedSearch:
    """`legs` are the ranking sources outside the engine (the graph's, `Platform.legs`);
    `transport` replaces the network for Cohere (tests)."""
    s = runtime.settings
    reranker = OnDemandReranker(s, transport)
    service = SearchService(
        runtime.index,
        runtime.embedder,
        RetrievalConfig.from_settings(s.retrieval),
        legs,
        reranker,
        legs_in_hybrid=s.graph.in_hybrid,
    )
    return ServedSearch(service, reranker)
