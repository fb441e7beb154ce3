"""Open the index the settings name: the embedded shard, or a Qdrant server."""

from __future__ import annotations

from pathlib import Path

from core.index.base import ChunkIndex
from core.index.lock import ShardLockedError
from core.index.query import EngineQuery, FieldFilter, Range
from core.index.schema import TextIndexConfig
from core.settings import Settings

__all__ = ["ChunkIndex", "EngineQuery", "FieldFilter", "Range", "ShardLockedError", "open_index"]


def open_index(settings: Settings, dim: int, shard: Path | None = None) -> ChunkIndex:
    """`shard`: an embedded shard folder other than the settings' (a generation being built)."""
    bm25 = (settings.index.bm25_k1, settings.index.bm25_b)
    text = TextIndexConfig.from_settings(settings.index)
    if settings.index.mode == "edge":
        from core.index.edge import EdgeIndex, EngineThreads

        optimize_at = settings.index.optimize_min_unindexed
        threads = EngineThreads.from_settings(settings.index)
        return EdgeIndex(shard or settings.shard_path, dim, text, bm25, optimize_at, threads)

    from qdrant_client import QdrantClient

    from core.index.server import ClusterLayout, ServerIndex

    if settings.index.qdrant_url:
        key = (
            settings.index.qdrant_api_key.get_secret_value()
            if settings.index.qdrant_api_key
            else None
        )
        client = QdrantClient(url=settings.index.qdrant_url, api_key=key)
    else:
        path = settings.index.qdrant_path or settings.data_dir / "qdrant-local"
        client = QdrantClient(path=str(path))
    layout = ClusterLayout(
        settings.index.qdrant_shard_number,
        settings.index.qdrant_replication_factor,
        settings.index.qdrant_write_consistency_factor,
    )
    return ServerIndex.open_served(client, settings.index.collection, dim, text, bm25, layout)
