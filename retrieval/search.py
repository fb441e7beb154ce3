"""One search, end to end: the legs, their fusion, optional reranking, and where the time went.

When only engine legs run (dense, BM25) the index runs them in one engine batch and fuses them
with RRF (`ChunkIndex.search`). A leg that lives outside the engine (the graph) ranks chunk ids on
its own; when it finds any, the dense and BM25 legs run one by one and all legs are fused here
with the same function (`core.index.ranking.rrf`). Every id an outside leg returns is fetched
through the tenant scope and checked against the request's filters, so an outside leg can widen
recall but never a tenant's or a filter's reach.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from core.embedding import Embedder
from core.index import ChunkIndex, FieldFilter
from core.index.ranking import rrf
from core.types import Hit, TenantScope
from retrieval.filters import matches
from retrieval.hybrid import HybridRetriever, RetrievalConfig
from retrieval.rerank import Reranker

SearchMode = Literal["hybrid", "dense", "bm25", "graph"]


class Leg(Protocol):
    """A ranking source outside the engine, e.g. `graph.leg.GraphLeg`."""

    name: str

    def rank(self, scope: TenantScope, query: str, limit: int) -> list[str]:
        """Chunk point ids of the scope's tenant, best first, at most `limit`."""
        ...


class SearchUnavailableError(RuntimeError):
    """The request needs a component this process does not have; `code` says which."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class SearchRequest:
    query: str
    top_k: int
    mode: SearchMode = "hybrid"
    filters: tuple[FieldFilter, ...] = ()
    rerank: bool = False
    rerank_top_n: int | None = None  # fused hits the reranker re-scores; required with rerank
    explain: bool = False  # per-leg ranks for hybrid hits of dense and BM25 alone

    def __post_init__(self) -> None:
        if self.rerank and self.rerank_top_n is None:
            raise ValueError("a reranked search needs rerank_top_n (the settings' rerank_top_n)")

    @property
    def depth(self) -> int:
        """Fused hits to fetch: the reranker's top n when it runs, else top_k."""
        return max(self.top_k, self.rerank_top_n or 0) if self.rerank else self.top_k


@dataclass
class RankedChunk:
    """`score` is the fused RRF score (a leg's own score in single-leg modes)."""

    id: str
    payload: dict[str, Any]
    score: float
    leg_ranks: dict[str, int] = field(default_factory=dict)
    rerank_score: float | None = None


@dataclass
class SearchResult:
    chunks: list[RankedChunk]
    timings_ms: dict[str, float]


class _Stopwatch:
    """Milliseconds per stage for one request; a stage timed twice adds up."""

    def __init__(self, ms: dict[str, float] | None = None) -> None:
        """`ms`: the stages an earlier part of the request timed, which it goes on from."""
        self.ms = dict(ms or {})

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - start) * 1000


class _TimedEmbedder:
    """Lets one request's HybridRetriever report query-embedding time apart from engine time."""

    def __init__(self, embedder: Embedder, watch: _Stopwatch) -> None:
        self._embedder = embedder
        self._watch = watch

    def embed_query(self, text: str) -> np.ndarray:
        with self._watch.stage("embed"):
            return self._embedder.embed_query(text)


class SearchService:
    """Shared by all requests; each search keeps its own state, so it is safe across threads."""

    def __init__(
        self,
        index: ChunkIndex,
        embedder: Embedder,
        config: RetrievalConfig,
        legs: Sequence[Leg] = (),
        reranker: Callable[[], Reranker | None] = lambda: None,
        legs_in_hybrid: bool = True,
    ) -> None:
        """`reranker` gives the reranker (None: there is none) when a request first asks for one,
        so a process that never reranks never loads it; `legs_in_hybrid`: whether `hybrid` fuses
        outside legs in, or only `graph` uses them."""
        self._index = index
        self._embedder = embedder
        self._config = config
        self._legs = list(legs)
        self._reranker = reranker
        self._legs_in_hybrid = legs_in_hybrid

    @property
    def reranker(self) -> Reranker | None:
        return self._reranker()

    @property
    def leg_names(self) -> list[str]:
        return [leg.name for leg in self._legs]

    @property
    def modes(self) -> list[SearchMode]:
        """The modes this service answers: `graph` needs an outside leg to rank with."""
        engine: list[SearchMode] = ["hybrid", "dense", "bm25"]
        return [*engine, "graph"] if self._legs else engine

    def search(self, scope: TenantScope, req: SearchRequest) -> SearchResult:
        return self.rerank(req, self.retrieve(scope, req))

    def retrieve(self, scope: TenantScope, req: SearchRequest) -> SearchResult:
        """The search up to its reranking: the fused candidates, `req.depth` of them.

        Apart from `rerank` so that a caller can run the two stages in separate pools (the API
        does: a reranking queued behind another tenant's must not hold up a plain search).
        """
        if req.rerank and self.reranker is None:
            raise SearchUnavailableError("reranker_unavailable", "no reranker is loaded")
        if req.mode not in self.modes:
            raise SearchUnavailableError("mode_unavailable", "no graph leg is configured")
        watch = _Stopwatch()
        with watch.stage("total"):
            depth = req.depth
            retriever = HybridRetriever(
                self._index,
                _TimedEmbedder(self._embedder, watch),  # type: ignore[arg-type]
                self._config,
            )
            outside: dict[str, list[Hit]] = {}
            outside_modes = ("hybrid", "graph") if self._legs_in_hybrid else ("graph",)
            if req.mode in outside_modes and self._legs:
                outside = self._outside_rankings(scope, req, watch)
            if req.mode == "graph" or any(outside.values()):
                chunks = self._fuse(scope, req, retriever, outside, depth, watch)
            else:
                chunks = self._engine(scope, req, retriever, depth, watch)
        return SearchResult(chunks, watch.ms)

    def rerank(self, req: SearchRequest, found: SearchResult) -> SearchResult:
        """`retrieve`'s candidates reranked if `req` asks for it, then its top_k."""
        watch = _Stopwatch(found.timings_ms)
        chunks = found.chunks
        if req.rerank:
            with watch.stage("total"), watch.stage("rerank"):
                chunks = self._rerank(req.query, chunks)
        return SearchResult(chunks[: req.top_k], watch.ms)

    def _engine(
        self,
        scope: TenantScope,
        req: SearchRequest,
        retriever: HybridRetriever,
        depth: int,
        watch: _Stopwatch,
    ) -> list[RankedChunk]:
        hits = _retrieve(watch, retriever, scope, req, depth, req.mode, req.explain)
        return [RankedChunk(h.id, h.payload, h.score, dict(h.leg_ranks)) for h in hits]

    def _outside_rankings(
        self, scope: TenantScope, req: SearchRequest, watch: _Stopwatch
    ) -> dict[str, list[Hit]]:
        """Each outside leg's hits, kept only if they are in scope and pass the filters."""
        limit = max(self._config.candidates_per_leg, req.depth)
        rankings: dict[str, list[str]] = {}
        for leg in self._legs:
            with watch.stage(leg.name):
                rankings[leg.name] = list(leg.rank(scope, req.query, limit))[:limit]
        ids = list(dict.fromkeys(i for ranked in rankings.values() for i in ranked))
        if not ids:
            return {leg: [] for leg in rankings}
        with watch.stage("fetch"):
            found = {
                h.id: h for h in self._index.retrieve(scope, ids) if matches(h.payload, req.filters)
            }
        return {leg: [found[i] for i in r if i in found] for leg, r in rankings.items()}

    def _fuse(
        self,
        scope: TenantScope,
        req: SearchRequest,
        retriever: HybridRetriever,
        rankings: dict[str, list[Hit]],
        depth: int,
        watch: _Stopwatch,
    ) -> list[RankedChunk]:
        """Dense and BM25 one by one (in hybrid mode), then RRF over every leg in Python."""
        c = self._config
        rankings = dict(rankings)
        if req.mode == "hybrid":
            deep = max(c.candidates_per_leg, depth)
            for leg in ("dense", "bm25"):
                rankings[leg] = _retrieve(watch, retriever, scope, req, deep, leg)
        with watch.stage("fuse"):
            fused = rrf(rankings, k=c.rrf_k, limit=depth)
        return [RankedChunk(h.id, h.payload, h.score, h.leg_ranks) for h in fused]

    def _rerank(self, query: str, chunks: list[RankedChunk]) -> list[RankedChunk]:
        assert self.reranker is not None
        scores = self.reranker.score(query, [c.payload.get("text", "") for c in chunks])
        for chunk, score in zip(chunks, scores, strict=True):
            chunk.rerank_score = score
        return sorted(chunks, key=lambda c: c.rerank_score, reverse=True)


def _retrieve(
    watch: _Stopwatch,
    retriever: HybridRetriever,
    scope: TenantScope,
    req: SearchRequest,
    limit: int,
    mode: str,
    with_leg_ranks: bool = False,
) -> list[Hit]:
    """Engine time is the retriever's time less the query embedding done inside it."""
    embed_before = watch.ms.get("embed", 0.0)
    start = time.perf_counter()
    hits = retriever.retrieve(
        scope,
        req.query,
        limit,
        mode,
        req.filters,
        with_leg_ranks,  # type: ignore[arg-type]
    )
    spent = (time.perf_counter() - start) * 1000 - (watch.ms.get("embed", 0.0) - embed_before)
    watch.ms["engine"] = watch.ms.get("engine", 0.0) + spent
    return hits
