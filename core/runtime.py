"""The heavy, shared objects of one process: the model, the index, the manifest, the cache.

Each is created on first use and reused, so the CLI, the API and a worker each load the model and
open the index once. Closing the runtime flushes and releases the embedded shard's lock.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from core.embedding import CachedEmbedder, Embedder, EmbeddingCache
from core.index import ChunkIndex, open_index
from core.manifest import Manifest
from core.onnx_models import InferenceOptions
from core.settings import Settings

if TYPE_CHECKING:
    from graph.store import GraphStore

# Models load from local folders or the local hub cache only; nothing is fetched at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Runtime:
    """`embedder` may be passed in to share one loaded model between runtimes (tests, benches)."""

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        if embedder is not None:
            self.__dict__["embedder"] = embedder

    @cached_property
    def embedder(self) -> Embedder:
        s = self.settings
        inference = InferenceOptions.from_settings(s)
        return Embedder(s.embedding_model, s.embedding_batch_size, s.query_prefix, inference)

    @cached_property
    def cached_embedder(self) -> CachedEmbedder:
        return CachedEmbedder(self.embedder, EmbeddingCache(self.settings.embedding_cache_path))

    @cached_property
    def index(self) -> ChunkIndex:
        return open_index(self.settings, self.embedder.dim)

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.settings.manifest_path)

    @cached_property
    def graph_store(self) -> GraphStore:
        """One per process: ingestion writes it and the API's graph leg reads the same object."""
        from graph.factory import open_graph_store

        return open_graph_store(self.settings)

    def close(self) -> None:
        for name in ("index", "manifest", "graph_store"):
            if name in self.__dict__:
                self.__dict__.pop(name).close()
        if "cached_embedder" in self.__dict__:
            self.__dict__.pop("cached_embedder")._cache.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
