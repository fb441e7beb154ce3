"""How ingestion tells other parts of the platform (the graph) that a document changed.

The protocol lives in `core` so that `ingest` and `graph` need not know each other: the syncer
calls whatever listeners the composition root (`serving.platform`) hands it, and the graph's
updater reads of a document only what `ChangedDocument` names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from core.types import TenantScope


class ChunkText(Protocol):
    @property
    def text(self) -> str: ...


class ChangedDocument(Protocol):
    """A document as ingestion prepared it (`ingest.documents.PreparedDocument`)."""

    @property
    def doc_id(self) -> str: ...

    @property
    def scope(self) -> TenantScope: ...

    @property
    def chunks(self) -> Sequence[ChunkText]: ...


class DocumentListener(Protocol):
    """Told after a document's chunks are written or removed, e.g. to keep the graph in step.

    Called after the index write, so a listener that fails leaves the index correct and the
    document is retried on the next scan (its manifest row is not yet written). `point_ids` are
    the document's chunks' point ids, in the order of `doc.chunks`.
    """

    def on_indexed(self, doc: ChangedDocument, point_ids: list[str]) -> None: ...

    def on_deleted(self, scope: TenantScope, doc_id: str) -> None: ...


class GenerationBuild(Protocol):
    """What one rebuild builds beside the new index generation, such as the knowledge graph of
    its chunks (graph entries name chunk point ids, so each generation has its own)."""

    @property
    def listeners(self) -> Sequence[DocumentListener]:
        """Told of every document the rebuild writes into the new generation."""
        ...

    def prepare(self, tenant_ids: Iterable[str]) -> None:
        """Get ready to serve these tenants before the switch (load, not at the first search)."""

    def serve(self) -> Callable[[], None]:
        """Serve what was built, right after the index switched; returns how to retire the
        replaced one, which the index's switch calls after its grace period."""
        ...

    def close(self) -> None: ...


class GenerationCompanion(Protocol):
    """Data kept per index generation beside the index; `ingest.reindex` builds and switches it
    with the index without knowing what it is."""

    def build(self, generation: str) -> GenerationBuild: ...

    def drop(self, generation: str) -> None:
        """Remove an abandoned generation's data (never served)."""
