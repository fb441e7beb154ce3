"""Build the graph's parts from settings: the extractor, the store, the listener and the leg."""

from __future__ import annotations

import redis

from core.generation import GENERATIONS_DIR
from core.llm import ChatClient, graph_llm_endpoint
from core.settings import GraphSettings, Settings
from graph.extract import EntityExtractor, RuleExtractor
from graph.leg import GraphLeg
from graph.llm import LlmExtractor
from graph.store import FileGraphStore, GraphStore, RedisGraphStore
from graph.updater import GraphUpdater


def make_extractor(settings: Settings) -> EntityExtractor:
    if settings.graph.extractor == "rules":
        return RuleExtractor()
    endpoint = graph_llm_endpoint(settings.graph, settings.llm)
    if endpoint is None:
        raise ValueError("RAG_GRAPH_EXTRACTOR=llm needs RAG_GRAPH_LLM_BASE_URL or RAG_LLM_BASE_URL")
    return LlmExtractor(ChatClient(endpoint))


def open_graph_store(settings: Settings, generation: str | None = None) -> GraphStore:
    """The graph of one index generation (its fingerprint id); None: the one from before
    generations, under data_dir/graph (or `rag:graph` in Redis)."""
    if settings.graph.store == "redis":
        client = redis.Redis.from_url(settings.graph.redis_url or settings.redis_url)
        prefix = "rag:graph" if generation is None else f"rag:graph@{generation}"
        return RedisGraphStore(client, prefix)
    if generation is None:
        return FileGraphStore(settings.data_dir / "graph")
    return FileGraphStore(settings.data_dir / GENERATIONS_DIR / generation / "graph")


def make_updater(
    settings: Settings, store: GraphStore, reuse: GraphStore | None = None
) -> GraphUpdater:
    return GraphUpdater(store, make_extractor(settings), reuse)


def make_leg(graph: GraphSettings, store: GraphStore) -> GraphLeg:
    return GraphLeg(store, graph.max_hops, graph.max_chunks)
