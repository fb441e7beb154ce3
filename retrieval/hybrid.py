"""Hybrid retrieval: the dense and BM25 legs, fused with Reciprocal Rank Fusion.

The index orders each leg and the fusion by `core.index.ranking.ranking_key`, so the same query
on the same corpus returns the same order, whichever build of the index answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.embedding import Embedder
from core.index import ChunkIndex, EngineQuery, FieldFilter
from core.settings import RetrievalSettings
from core.types import Hit, TenantScope

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class RetrievalConfig:
    """The settings' candidates_per_leg, rrf_k and tie_fetch_limit."""

    candidates_per_leg: int
    rrf_k: int
    tie_fetch_limit: int

    @classmethod
    def from_settings(cls, retrieval: RetrievalSettings) -> RetrievalConfig:
        return cls(retrieval.candidates_per_leg, retrieval.rrf_k, retrieval.tie_fetch_limit)


class HybridRetriever:
    """Embeds the query only when the dense leg runs, then lets the index do the rest."""

    def __init__(self, index: ChunkIndex, embedder: Embedder, config: RetrievalConfig) -> None:
        self._index = index
        self._embedder = embedder
        self._config = config

    def retrieve(
        self,
        scope: TenantScope,
        query: str,
        top_k: int,
        mode: Mode = "hybrid",
        filters: tuple[FieldFilter, ...] = (),
        with_leg_ranks: bool = False,
    ) -> list[Hit]:
        c = self._config
        dense = self._embedder.embed_query(query) if mode in ("hybrid", "dense") else None
        return self._index.search(
            EngineQuery(
                scope=scope,
                limit=top_k,
                dense=dense,
                text=query if mode in ("hybrid", "bm25") else None,
                filters=filters,
                candidates=max(c.candidates_per_leg, top_k),
                rrf_k=c.rrf_k,
                tie_fetch_limit=c.tie_fetch_limit,
                with_leg_ranks=with_leg_ranks,
            )
        )
