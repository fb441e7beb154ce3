"""Keeps each tenant's graph in step with its documents, as a listener of the document syncer.

The unit of change is the chunk: a chunk's point id is derived from its text, so a chunk whose id
survives an edit says the same thing and keeps its stored extraction; only new chunks go through
the extractor, and the store retracts exactly the chunks that disappeared. A rebuild's updater
fills the new generation's store and takes the extractions of chunks it shares with the served
generation from the served store (`reuse`), so a chunking change extracts only new chunk texts.
"""

from __future__ import annotations

from core.listeners import ChangedDocument
from core.types import TenantScope
from graph.extract import EntityExtractor
from graph.model import DocFacts
from graph.store import GraphStore


class GraphUpdater:
    """Implements `core.listeners.DocumentListener`."""

    def __init__(
        self, store: GraphStore, extractor: EntityExtractor, reuse: GraphStore | None = None
    ) -> None:
        self._store = store
        self._extractor = extractor
        self._reuse = reuse
        self.chunks_extracted = 0  # chunks sent to the extractor, to show edits stay proportional

    def on_indexed(self, doc: ChangedDocument, point_ids: list[str]) -> None:
        old = self._store.document(doc.scope, doc.doc_id) or {}
        known = old
        if self._reuse is not None:
            known = {**(self._reuse.document(doc.scope, doc.doc_id) or {}), **old}
        facts: DocFacts = {}
        for chunk, point_id in zip(doc.chunks, point_ids, strict=True):
            if point_id in known:
                facts[point_id] = known[point_id]
            else:
                facts[point_id] = self._extractor.extract(chunk.text)
                self.chunks_extracted += 1
        if facts != old:  # a sidecar-only change leaves the chunks, and so the graph, as they are
            self._store.put(doc.scope, doc.doc_id, facts)

    def on_deleted(self, scope: TenantScope, doc_id: str) -> None:
        self._store.put(scope, doc_id, None)
