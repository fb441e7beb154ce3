"""Hybrid retrieval: the dense and BM25 legs, fused with Reciprocal Rank Fusion in the engine.

RRF ties exactly and often (a chunk at rank 3 of one leg only scores the same as another at
rank 3 of the other leg only), and the engine orders tied hits arbitrarily, so the same query
could come back in a different order. Fused hits are therefore ordered by (score, point id), and
the engine is asked for enough hits that the tie group at the cut is complete before cutting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.embedding import Embedder
from core.index import ChunkIndex, EngineQuery, FieldFilter
from core.settings import RetrievalSettings
from core.types import Hit, TenantScope

Mode = Literal["hybrid", "dense", "bm25"]
_TIE_MARGIN = 10  # hits past the cut fetched to see whether the last score continues


@dataclass(frozen=True)
class RetrievalConfig:
    """The settings' candidates_per_leg and rrf_k."""

    candidates_per_leg: int
    rrf_k: int
    weights: tuple[float, float] | None = None  # (dense, bm25); None weighs legs equally

    @classmethod
    def from_settings(cls, retrieval: RetrievalSettings) -> RetrievalConfig:
        return cls(retrieval.candidates_per_leg, retrieval.rrf_k)


class HybridRetriever:
    """Embeds the query only when the dense leg runs, then lets the engine do the rest."""

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
        candidates = max(c.candidates_per_leg, top_k)

        def fetch(limit: int) -> list[Hit]:
            return self._index.search(
                EngineQuery(
                    scope=scope,
                    limit=limit,
                    dense=dense,
                    text=query if mode in ("hybrid", "bm25") else None,
                    filters=filters,
                    candidates=candidates,
                    rrf_k=c.rrf_k,
                    weights=c.weights if mode == "hybrid" else None,
                    with_leg_ranks=with_leg_ranks,
                )
            )

        if mode != "hybrid":
            return fetch(top_k)
        # Two legs fuse into at most 2 * candidates hits; past that the list is complete.
        limit, most = top_k + _TIE_MARGIN, 2 * candidates
        while True:
            hits = sorted(fetch(min(limit, most)), key=stable_order)
            complete = len(hits) < min(limit, most) or limit >= most
            if complete or hits[-1].score < hits[top_k - 1].score:
                return hits[:top_k]
            limit *= 2


def stable_order(hit: Hit) -> tuple[float, str]:
    """Best score first, exact ties by point id: the order every fusion path uses."""
    return (-hit.score, hit.id)
