"""The heavy, shared core objects of one process: the model, the index, the manifest, the cache.

Each is created on first use and reused, so the CLI, the API and a worker each load the model and
open the index once. Closing the runtime flushes and releases the embedded shard's lock; asked
again after that, it opens them anew (the loaded models stay). What is built on these (the graph,
ingestion, search, the LLM client) is assembled above the domain, in `serving.platform.Platform`.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path

from core.datadir import secure_data_dir
from core.embedding import CachedEmbedder, Embedder, EmbeddingCache
from core.generation import read_record, served_shard
from core.index import ChunkIndex, open_index
from core.manifest import Manifest
from core.onnx_models import InferenceOptions
from core.serving import Generation, ServedEmbedder, ServedIndex, Serving
from core.settings import Settings

# Models load from local folders or the local hub cache only; nothing is fetched at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class Runtime:
    """`embedder` may be passed in to share one loaded model between runtimes (tests, benches).

    Opening a runtime makes its data dir private (`core.datadir`) before anything is written.
    `index` and `embedder` are the served generation's (`core.serving`): its shard and the model
    and query prefix its record names, which may differ from the configured ones until a rebuild
    (`ingest.reindex`) switches to a generation made with the configuration.
    """

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        secure_data_dir(settings.data_dir)
        self._models: dict[tuple[str, str], Embedder] = {}
        self._models_guard = threading.Lock()
        if embedder is not None:
            self._models[(embedder.model_name, embedder.query_prefix)] = embedder

    def model(self, name: str, query_prefix: str) -> Embedder:
        """One loaded model per (name, query prefix) in the process, shared by generations."""
        with self._models_guard:
            key = (name, query_prefix)
            if key not in self._models:
                s = self.settings
                inference = InferenceOptions.from_settings(s)
                self._models[key] = Embedder(name, s.embedding_batch_size, query_prefix, inference)
            return self._models[key]

    def configured_model(self) -> Embedder:
        """The model the settings name, which a rebuild embeds the new generation with."""
        return self.model(self.settings.embedding_model, self.settings.query_prefix)

    def served_shard(self) -> Path:
        return served_shard(self.settings.data_dir, self.settings.shard_path)

    @cached_property
    def serving(self) -> Serving:
        s = self.settings
        record = read_record(self.served_shard()) if s.index_mode == "edge" else None
        if record is None:
            model = self.model(s.embedding_model, s.query_prefix)
        else:
            model = self.model(record["embedding_model"], record["query_prefix"])
        return Serving(Generation(open_index(s, model.dim, self.served_shard()), model))

    @cached_property
    def embedder(self) -> Embedder:
        return ServedEmbedder(self.serving)  # type: ignore[return-value]

    @cached_property
    def cached_embedder(self) -> CachedEmbedder:
        return CachedEmbedder(self.embedder, self.embedding_cache)

    @cached_property
    def embedding_cache(self) -> EmbeddingCache:
        return EmbeddingCache(self.settings.embedding_cache_path)

    @cached_property
    def index(self) -> ChunkIndex:
        return ServedIndex(self.serving)

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest(self.settings.manifest_path)

    def close(self) -> None:
        self.__dict__.pop("index", None)
        for name in ("serving", "manifest", "embedding_cache"):
            if name in self.__dict__:
                self.__dict__.pop(name).close()
        self.__dict__.pop("cached_embedder", None)
        self.__dict__.pop("embedder", None)  # it serves the generation just closed

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
