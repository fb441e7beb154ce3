"""The composition root: what one process builds from its settings, and how the parts are wired.

Every entry point (`rag serve` and `rag up`, a worker, `rag ingest`, `rag search`, `rag eval`)
asks a `Platform` for what it needs, so the graph, ingestion, search and the LLM client are
decided here and nowhere else. Below it, `core.runtime.Runtime` holds the core objects (model,
index, manifest, embedding cache); `ingest` and `graph` never import each other: the graph's
updater reaches ingestion as a `core.listeners.DocumentListener` handed over here, and its leg
reaches search as a `retrieval.search.Leg`.

Each part is built on first use and kept, so a process loads the model, opens the index and the
graph store, and loads the reranker (when a request first reranks, or a server starts) once.
`close` releases them all, the runtime included.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import httpx

from core.listeners import DocumentListener, GenerationCompanion
from core.llm import ChatClient, llm_endpoint
from core.runtime import Runtime
from core.settings import Settings
from graph.factory import make_leg, make_updater, open_graph_store
from graph.generations import GraphGenerations
from graph.store import ServedGraphStore
from ingest.bucket import Bucket
from ingest.reindex import Rebuild
from ingest.service import Ingestion, open_bucket
from retrieval.search import Leg, SearchService
from serving.search import ServedSearch, build_search


class Platform:
    """`legs` replaces the served outside legs and `http_transport` the network of the LLM and
    Cohere clients; both are for tests (a stand-in leg, a recorded LLM)."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        legs: Sequence[Leg] | None = None,
        http_transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.runtime = runtime
        self._legs = None if legs is None else list(legs)
        self._transport = http_transport

    @classmethod
    def open(cls, settings: Settings) -> Platform:
        return cls(Runtime(settings))

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @cached_property
    def graph_generations(self) -> GraphGenerations:
        """The served graph and its generations: it follows the runtime when another process
        switches the index, and builds the graph beside this process's rebuilds."""
        store = ServedGraphStore(open_graph_store(self.settings, self.runtime.served_generation()))
        generations = GraphGenerations(self.settings, store)
        self.runtime.on_follow.append(generations.follow)
        return generations

    @property
    def graph_store(self) -> ServedGraphStore:
        """One per process: ingestion writes it and the graph leg and routes read the same one,
        the served index generation's graph, switched with the index by a rebuild (in this
        process, or in another one that moved a server alias: the runtime follows, and so does
        the graph)."""
        return self.graph_generations.served

    @cached_property
    def generation_companions(self) -> list[GenerationCompanion]:
        """What a rebuild builds and switches beside the index: the graph, when enabled."""
        if not self.settings.graph.enabled:
            return []
        return [self.graph_generations]

    @cached_property
    def listeners(self) -> list[DocumentListener]:
        """Who ingestion tells of every document change: the graph's updater, when enabled."""
        if not self.settings.graph.enabled:
            return []
        return [make_updater(self.settings, self.graph_store)]

    @cached_property
    def legs(self) -> list[Leg]:
        """The ranking sources outside the engine: the graph leg, when enabled."""
        if self._legs is not None:
            return self._legs
        if not self.settings.graph.enabled:
            return []
        return [make_leg(self.settings.graph, self.graph_store)]

    @cached_property
    def bucket(self) -> Bucket:
        """The configured bucket (`RAG_BUCKET_URL`)."""
        return open_bucket(self.settings.ingest.bucket_url, self.settings.ingest)

    @cached_property
    def ingestion(self) -> Ingestion:
        """Ingestion of the configured bucket, as the workers and `rag up` run it."""
        return self.ingestion_of(self.bucket)

    def ingestion_of(self, bucket: Bucket) -> Ingestion:
        """Ingestion of another bucket (`rag ingest PATH`, an evaluation's workspace), with the
        same listeners, so the graph follows whichever bucket the index does."""
        return Ingestion(self.runtime, bucket, self.listeners)

    def rebuild(self, bucket: Bucket | None = None) -> Rebuild:
        """A rebuild of the index towards the configured fingerprint, from the configured bucket
        or another one, with the graph built and switched beside it."""
        return Rebuild(self.runtime, bucket or self.bucket, self.generation_companions)

    @cached_property
    def served_search(self) -> ServedSearch:
        """The SearchService `/v1/search`, `rag search` and `rag eval` use, and its reranker's
        status (why there is none, when there is none), loaded when first needed."""
        return build_search(self.runtime, self.legs, self._transport)

    @property
    def search(self) -> SearchService:
        return self.served_search.service

    @cached_property
    def llm(self) -> ChatClient | None:
        """The chat client of `RAG_LLM_BASE_URL`, or None when no LLM is configured."""
        endpoint = llm_endpoint(self.settings.llm)
        return ChatClient(endpoint, self._transport) if endpoint is not None else None

    def close(self) -> None:
        """Release everything built, in the reverse order of need; the runtime last."""
        llm = self.__dict__.pop("llm", None)
        if llm is not None:
            llm.close()
        if "served_search" in self.__dict__:
            self.__dict__.pop("served_search").close()
        for name in ("ingestion", "bucket", "legs", "listeners", "generation_companions"):
            self.__dict__.pop(name, None)
        if "graph_generations" in self.__dict__:
            self.__dict__.pop("graph_generations").served.close()
            self.runtime.on_follow.clear()
        self.runtime.close()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
