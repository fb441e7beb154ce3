"""The heavy, shared core objects of one process: the model, the index, the manifest, the cache.

Each is created on first use and reused, so the CLI, the API and a worker each load the model and
open the index once. Closing the runtime flushes and releases the embedded shard's lock; asked
again after that, it opens them anew (the loaded models stay). What is built on these (the graph,
ingestion, search, the LLM client) is assembled above the domain, in `serving.platform.Platform`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

from core.datadir import secure_data_dir
from core.embedding import CachedEmbedder, Embedder, EmbeddingCache
from core.generation import GENERATIONS_DIR, read_record, served_shard
from core.index import ChunkIndex, open_index
from core.index.lock import ShardLock
from core.manifest import Manifest
from core.onnx_models import InferenceOptions
from core.serving import Generation, ServedEmbedder, ServedIndex, Serving
from core.settings import Settings


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
        self._models: dict[tuple[str, str, str | None], Embedder] = {}
        self._models_guard = threading.Lock()
        # Called with the generation id when another process moved the server alias and this
        # one follows: the composition root switches what it keeps per generation (the graph).
        self.on_follow: list[Callable[[str | None], None]] = []
        if embedder is not None:
            key = (embedder.model_name, embedder.query_prefix, embedder.quantize)
            self._models[key] = embedder

    def model(self, name: str, query_prefix: str, quantize: str | None) -> Embedder:
        """One loaded model per (name, query prefix, quantization) in the process, shared by
        generations: a generation of int8 points is queried with the int8 weights, whatever the
        configuration now says, and the other way round."""
        with self._models_guard:
            key = (name, query_prefix, quantize)
            if key not in self._models:
                s = self.settings
                inference = replace(InferenceOptions.from_settings(s), quantize=quantize)
                if quantize is not None:
                    inference = replace(inference, backend="onnx")  # only ONNX quantizes
                self._models[key] = Embedder(
                    name, s.models.embedding_batch_size, query_prefix, inference
                )
            return self._models[key]

    def configured_model(self) -> Embedder:
        """The model the settings name, which a rebuild embeds the new generation with."""
        s = self.settings
        return self.model(
            s.models.embedding_model, s.models.query_prefix, s.models.inference_quantize
        )

    def served_shard(self) -> Path:
        return served_shard(self.settings.data_dir, self.settings.shard_path)

    def served_generation(self) -> str | None:
        """The served generation's fingerprint id, where its data lives apart (its shard under
        generations/, its graph); None for an index from before generations."""
        if self.settings.index.mode == "server":
            from core.index.server import ServerIndex, generation_of

            served = self.serving.current.index
            assert isinstance(served, ServerIndex)
            return generation_of(self.settings.index.collection, served.collection)
        shard = self.served_shard()
        return shard.parent.name if shard.parent.parent.name == GENERATIONS_DIR else None

    @cached_property
    def serving(self) -> Serving:
        s = self.settings
        if s.index.mode == "edge":
            # Before the model loads (seconds): a shard another process holds is said at once.
            ShardLock.check_free(self.served_shard())
            record = read_record(self.served_shard())
            model = self.configured_model() if record is None else self._model_of(record)
            return Serving(Generation(open_index(s, model.dim, self.served_shard()), model))
        index = open_index(s, self.configured_model().dim)
        record = index.generation_record()
        model = self.configured_model() if record is None else self._model_of(record)
        return Serving(Generation(index, model), self._follow_alias)

    def _follow_alias(self, current: Generation) -> Generation | None:
        """The generation the collection alias names now, when another process moved it."""
        from core.index.server import ServerIndex, generation_of, served_collection

        served = current.index
        assert isinstance(served, ServerIndex)
        target = served_collection(served.client, self.settings.index.collection)
        if target is None or target == served.collection:
            return None
        index = served.sibling(target, current.embedder.dim)
        record = index.generation_record()
        model = self.configured_model() if record is None else self._model_of(record)
        for follow in self.on_follow:  # what is kept per generation beside it (the graph)
            follow(generation_of(self.settings.index.collection, target))
        return Generation(index, model)

    def _model_of(self, record: dict[str, Any]) -> Embedder:
        """The model a generation's points were embedded with, as its record names it."""
        quantize = record.get("embedding_quantize")
        return self.model(record["embedding_model"], record["query_prefix"], quantize)

    @cached_property
    def embedder(self) -> Embedder:
        return ServedEmbedder(self.serving)  # type: ignore[return-value]

    @cached_property
    def cached_embedder(self) -> CachedEmbedder:
        return CachedEmbedder(self.embedder, self.embedding_cache)

    @cached_property
    def embedding_cache(self) -> EmbeddingCache:
        return EmbeddingCache.open(self.settings)

    @cached_property
    def index(self) -> ChunkIndex:
        return ServedIndex(self.serving)

    @cached_property
    def manifest(self) -> Manifest:
        return Manifest.open(self.settings)

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
