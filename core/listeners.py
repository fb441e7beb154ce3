"""How ingestion tells other parts of the platform (the graph) that a document changed.

The protocol lives in `core` so that `ingest` and `graph` need not know each other: the syncer
calls whatever listeners the composition root (`serving.platform`) hands it, and the graph's
updater reads of a document only what `ChangedDocument` names.
"""

from __future__ import annotations

from collections.abc import Sequence
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
