"""Indexes and engine queries built as the shipped settings build them, for index-level tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient

from core.index import ChunkIndex, EngineQuery
from core.index.edge import EdgeIndex
from core.index.schema import TextIndexConfig
from core.index.server import ServerIndex
from core.settings import Settings
from core.types import TenantScope
from graph.leg import GraphLeg
from graph.store import GraphStore

SHIPPED = Settings()
# The one tokenization qdrant-client's local mode scores (see `ServerIndex`): both backends use
# it where a test compares them or runs the same assertions on each.
PLAIN_WORDS = TextIndexConfig(lowercase=True, ascii_folding=False, stemmer=None, stopwords=None)


def engine_query(scope: TenantScope, limit: int, *args: Any, **fields: Any) -> EngineQuery:
    """An `EngineQuery` with the settings' candidates_per_leg, rrf_k and tie_fetch_limit unless
    given."""
    fields.setdefault("candidates", SHIPPED.retrieval.candidates_per_leg)
    fields.setdefault("rrf_k", SHIPPED.retrieval.rrf_k)
    fields.setdefault("tie_fetch_limit", SHIPPED.retrieval.tie_fetch_limit)
    return EngineQuery(scope, limit, *args, **fields)


def bm25_params(settings: Settings = SHIPPED) -> tuple[float, float]:
    return settings.index.bm25_k1, settings.index.bm25_b


def edge_index(
    path: Path, dim: int, text_index: TextIndexConfig = PLAIN_WORDS, **kwargs: Any
) -> EdgeIndex:
    """An embedded shard with the shipped settings' BM25 and optimisation threshold."""
    kwargs.setdefault("bm25", bm25_params())
    kwargs.setdefault("optimize_min_unindexed", SHIPPED.index.optimize_min_unindexed)
    return EdgeIndex(path, dim, text_index, **kwargs)


def local_server_index(
    path: Path, dim: int, text_index: TextIndexConfig = PLAIN_WORDS, **kwargs: Any
) -> ServerIndex:
    """A collection in qdrant-client's local mode at `path`, with the shipped BM25 parameters."""
    kwargs.setdefault("bm25", bm25_params())
    return ServerIndex(QdrantClient(path=str(path)), "chunks", dim, text_index, **kwargs)


def open_backend(kind: str, path: Path, dim: int) -> ChunkIndex:
    """Both backends with the one tokenization local mode scores, so their BM25 agrees."""
    if kind == "edge":
        return edge_index(path / "shard", dim)
    return local_server_index(path / "local", dim)


def graph_leg(store: GraphStore, **overrides: int) -> GraphLeg:
    """A graph leg with the shipped settings' hops and chunk budget unless given."""
    overrides.setdefault("max_hops", SHIPPED.graph.max_hops)
    overrides.setdefault("max_chunks", SHIPPED.graph.max_chunks)
    return GraphLeg(store, **overrides)
