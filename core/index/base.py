"""The one interface ingestion and retrieval use to reach Qdrant, whichever engine runs it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

from core.index.dialect import FilterDialect, scoped_filter
from core.index.query import EngineQuery, LegName
from core.types import Hit, IndexedChunk, TenantScope


class ChunkIndex(ABC):
    """Chunks as points: a named dense vector, a BM25 text index and filterable payload."""

    dialect: FilterDialect

    def _filter(self, query: EngineQuery) -> Any:
        return scoped_filter(query.scope, query.filters, self.dialect)

    def _scope_filter(self, scope: TenantScope | None, doc_id: str | None = None) -> Any:
        """A tenant (and optionally document) filter; None reaches every tenant, for admin work."""
        if scope is None:
            return None
        extra = {"doc_id": doc_id} if doc_id else {}
        return scoped_filter(scope, (), self.dialect, **extra)

    @abstractmethod
    def upsert(self, chunks: Sequence[IndexedChunk]) -> None: ...

    @abstractmethod
    def delete(self, ids: Sequence[str]) -> None: ...

    @abstractmethod
    def delete_document(self, scope: TenantScope, doc_id: str) -> None:
        """Remove every chunk of a document, including any a crashed run left behind."""

    def chunk_ids(self, scope: TenantScope, doc_id: str) -> set[str]:
        """The ids the index holds for a document: the truth a sync diffs against."""
        return {pid for pid, _ in self.scroll(scope, (), doc_id=doc_id)}

    @abstractmethod
    def document_ids(self) -> dict[str, int]:
        """Every doc id in the index with its chunk count, across tenants, for reconciliation."""

    def search(self, query: EngineQuery) -> list[Hit]:
        """Run the legs in the engine (RRF there when there are two), tenant-scoped.

        With `with_leg_ranks`, each leg also runs on its own in the same batch so the caller can
        see which leg found a hit at which rank; the fused order is the engine's either way.
        """
        requests = [self._fused_request(query)]
        explain = query.with_leg_ranks and len(query.legs) > 1
        if explain:
            requests += [self._leg_request(query, leg) for leg in query.legs]
        results = self._run(requests)
        hits = results[0]
        if explain:
            for leg, leg_hits in zip(query.legs, results[1:], strict=True):
                ranks = rank_map([h.id for h in leg_hits])
                for hit in hits:
                    if hit.id in ranks:
                        hit.leg_ranks[leg] = ranks[hit.id]
        elif len(query.legs) == 1:
            for rank, hit in enumerate(hits, start=1):
                hit.leg_ranks[query.legs[0]] = rank
        return hits

    @abstractmethod
    def _fused_request(self, query: EngineQuery) -> Any:
        """The engine request for the whole query: one leg, or RRF over prefetched legs."""

    @abstractmethod
    def _leg_request(self, query: EngineQuery, leg: LegName) -> Any:
        """The engine request for one leg alone, `candidates` deep."""

    @abstractmethod
    def _run(self, requests: list[Any]) -> list[list[Hit]]:
        """Run requests as one batch, returning hits with string ids."""

    @abstractmethod
    def retrieve(self, scope: TenantScope, ids: Sequence[str]) -> list[Hit]:
        """Points by id, dropping any outside the scope."""

    def scroll(
        self, scope: TenantScope | None, fields: Sequence[str], doc_id: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(id, selected payload) for every point, optionally in one tenant or one document."""
        flt = self._scope_filter(scope, doc_id)
        offset = None
        while True:
            records, offset = self._scroll_page(flt, fields, offset)
            for r in records:
                yield str(r.id), r.payload or {}
            if offset is None:
                return

    @abstractmethod
    def _scroll_page(self, flt: Any, fields: Sequence[str], offset: Any) -> tuple[list[Any], Any]:
        """One page of points with the selected payload fields, and the next page's offset."""

    @abstractmethod
    def count(self, scope: TenantScope | None = None) -> int: ...

    @abstractmethod
    def generation_record(self) -> dict[str, Any] | None:
        """The fingerprint of how this index's points were made (`core.generation`), if stamped."""

    @abstractmethod
    def set_generation_record(self, record: dict[str, Any]) -> None: ...

    @abstractmethod
    def vector_status(self) -> dict[str, int]:
        """`points` and `indexed_vectors` (those in the HNSW graph), for status."""

    def optimize(self) -> bool:
        """Build the vector index over what was written since the last call; True if it did.

        A Qdrant server optimises in the background on its own, so by default there is nothing to
        do; an embedded engine only does it when asked.
        """
        return False

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> ChunkIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rank_map(ids: Sequence[str]) -> dict[str, int]:
    """1-based ranks of a leg's result list, as RRF and the API report them."""
    return {pid: rank for rank, pid in enumerate(ids, start=1)}
