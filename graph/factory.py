"""Build the graph's parts from settings: the extractor, the store, the listener and the leg."""

from __future__ import annotations

import httpx
import redis

from core.settings import Settings
from graph.extract import EntityExtractor, RuleExtractor
from graph.leg import GraphLeg
from graph.llm import LlmExtractor
from graph.store import FileGraphStore, GraphStore, RedisGraphStore
from graph.updater import GraphUpdater


def make_extractor(settings: Settings) -> EntityExtractor:
    if settings.graph_extractor == "rules":
        return RuleExtractor()
    base_url = settings.graph_llm_base_url or settings.llm_base_url
    if not base_url:
        raise ValueError("graph_extractor=llm needs graph_llm_base_url or llm_base_url")
    key = settings.graph_llm_api_key or settings.llm_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    client = httpx.Client(
        base_url=base_url.rstrip("/") + "/", headers=headers, timeout=settings.llm_timeout_s
    )
    return LlmExtractor(client, settings.graph_llm_model or settings.llm_model)


def open_graph_store(settings: Settings) -> GraphStore:
    if settings.graph_store == "redis":
        return RedisGraphStore(redis.Redis.from_url(settings.graph_redis_url or settings.redis_url))
    return FileGraphStore(settings.data_dir / "graph")


def make_updater(settings: Settings, store: GraphStore) -> GraphUpdater:
    return GraphUpdater(store, make_extractor(settings))


def make_leg(settings: Settings, store: GraphStore) -> GraphLeg:
    return GraphLeg(store, settings.graph_max_hops, settings.graph_max_chunks)
