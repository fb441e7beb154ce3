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
    index = settings.index
    bm25 = (index.bm25_k1, index.bm25_b)
    text = TextIndexConfig.from_settings(index)
    if index.mode == "edge":
        from core.index.edge import EdgeIndex, EngineThreads

        threads = EngineThreads.from_settings(index)
        return EdgeIndex(
            shard or settings.shard_path, dim, text, bm25, index.optimize_min_unindexed, threads
        )

    from qdrant_client import QdrantClient

    from core.index.server import ClusterLayout, ServerIndex

    if index.qdrant_url:
        key = index.qdrant_api_key.get_secret_value() if index.qdrant_api_key else None
        client = QdrantClient(url=index.qdrant_url, api_key=key)
    else:
        path = index.qdrant_path or settings.data_dir / "qdrant-local"
        client = QdrantClient(path=str(path))
    layout = ClusterLayout(
        index.qdrant_shard_number,
        index.qdrant_replication_factor,
        index.qdrant_write_consistency_factor,
    )
    return ServerIndex.open_served(client, index.collection, dim, text, bm25, layout)
