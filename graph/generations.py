"""The knowledge graph kept per index generation, built and switched with it by a rebuild.

Graph entries name chunk point ids, which a change of chunking or model changes, so a rebuild
(`ingest.reindex`) builds the new generation's graph through the same updater as ingestion's,
beside the served one, and switches it right after the index. It reaches the rebuild as a
`core.listeners.GenerationCompanion`, handed over by the composition root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from core.settings import Settings
from core.types import TenantScope
from graph.factory import make_updater, open_graph_store
from graph.store import GraphStore, ServedGraphStore
from graph.updater import GraphUpdater


class GraphBuild:
    """One generation's graph being built; the served graph lends the extractions of the chunks
    both generations share, so only new chunk texts reach the extractor."""

    def __init__(self, settings: Settings, store: GraphStore, served: ServedGraphStore) -> None:
        self._store = store
        self._served = served
        self._listeners = [make_updater(settings, store, reuse=served)]

    @property
    def listeners(self) -> list[GraphUpdater]:
        return self._listeners

    def prepare(self, tenant_ids: Iterable[str]) -> None:
        for tenant in tenant_ids:
            with self._store.read(TenantScope(tenant)):
                pass

    def serve(self) -> Callable[[], None]:
        old = self._served.current
        self._served.switch(self._store)
        return lambda: ServedGraphStore.retire(old)

    def close(self) -> None:
        self._store.close()


class GraphGenerations:
    """The graph's side of index generations, for the process serving `served`."""

    def __init__(self, settings: Settings, served: ServedGraphStore) -> None:
        self._settings = settings
        self.served = served

    def build(self, generation: str) -> GraphBuild:
        return GraphBuild(self._settings, open_graph_store(self._settings, generation), self.served)

    def drop(self, generation: str) -> None:
        """An abandoned generation's graph, which may live in Redis rather than its folder."""
        abandoned = open_graph_store(self._settings, generation)
        abandoned.drop()
        abandoned.close()

    def follow(self, generation: str | None) -> None:
        """Serve `generation`'s graph: another process switched the index to it."""
        old = self.served.current
        self.served.switch(open_graph_store(self._settings, generation))
        old.close()
