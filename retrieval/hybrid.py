"""Hybrid retrieval: the dense and BM25 legs, fused with Reciprocal Rank Fusion in the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.embedding import Embedder
from core.index import ChunkIndex, EngineQuery, FieldFilter
from core.types import Hit, TenantScope

Mode = Literal["hybrid", "dense", "bm25"]


@dataclass(frozen=True)
class RetrievalConfig:
    candidates_per_leg: int = 50
    rrf_k: int = 60
    weights: tuple[float, float] | None = None  # (dense, bm25); None weighs legs equally


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
        return self._index.search(
            EngineQuery(
                scope=scope,
                limit=top_k,
                dense=dense,
                text=query if mode in ("hybrid", "bm25") else None,
                filters=filters,
                candidates=max(c.candidates_per_leg, top_k),
                rrf_k=c.rrf_k,
                weights=c.weights if mode == "hybrid" else None,
                with_leg_ranks=with_leg_ranks,
            )
        )
