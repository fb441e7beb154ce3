"""The embedded default: Qdrant's engine in this process, through qdrant-edge-py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from core.generation import read_record, write_record
from core.index.base import ChunkIndex
from core.index.dialect import FilterDialect
from core.index.lock import ShardLock
from core.index.query import EngineQuery, LegName
from core.index.schema import (
    DENSE_VECTOR,
    HNSW_PAYLOAD_FIELDS,
    PAYLOAD_INDEXES,
    TEXT_FIELD,
    TextIndexConfig,
)
from core.settings import IndexSettings
from core.types import Hit, IndexedChunk, TenantScope

DIALECT = FilterDialect(
    filter=qe.Filter,
    field=qe.FieldCondition,
    match_value=qe.MatchValue,
    match_any=qe.MatchAny,
    number_range=qe.RangeFloat,
    datetime_range=qe.RangeDateTime,
)
_FACET_LIMIT = 10_000_000
_SCROLL_PAGE = 1_000


def _stemmer(cfg: TextIndexConfig) -> qe.SnowballParams | qe.DisabledStemmer:
    if not cfg.stemmer:
        return qe.DisabledStemmer()
    return qe.SnowballParams(getattr(qe.SnowballLanguage, cfg.stemmer.capitalize()))


def _stopwords(cfg: TextIndexConfig) -> qe.Language | qe.StopwordsSet:
    if not cfg.stopwords:
        return qe.StopwordsSet(languages=set(), custom=set())
    return getattr(qe.Language, cfg.stopwords.capitalize())


def _text_index(cfg: TextIndexConfig) -> qe.TextIndexParams:
    return qe.TextIndexParams(
        tokenizer=qe.TokenizerType.Word,
        lowercase=cfg.lowercase,
        ascii_folding=cfg.ascii_folding,
        stemmer=_stemmer(cfg),
        stopwords=_stopwords(cfg),
        scoring=True,
        enable_hnsw=False,
    )


def analyzer(cfg: TextIndexConfig) -> qe.Bm25:
    """The engine's own analysis of text under the text index's settings.

    The binding's BM25 model runs the same tokenizer, stopwords and stemmer as the text index
    and names each token by its murmur3 hash, so what the index makes of a text can be checked
    token by token against another analyzer (`bench/bm25_parity.py`) without reimplementing it.
    """
    return qe.Bm25(
        qe.Bm25Config(
            tokenizer=qe.TokenizerType.Word,
            lowercase=cfg.lowercase,
            ascii_folding=cfg.ascii_folding,
            stemmer=_stemmer(cfg),
            stopwords=_stopwords(cfg),
        )
    )


def _schema(field: str, kind: str, cfg: TextIndexConfig) -> Any:
    hnsw = field in HNSW_PAYLOAD_FIELDS
    if kind == "text":
        return _text_index(cfg)
    if kind == "keyword":
        return qe.KeywordIndexParams(is_tenant=field == "tenant_id", enable_hnsw=hnsw)
    if kind == "integer":
        return qe.IntegerIndexParams(lookup=True, range=True, enable_hnsw=hnsw)
    if kind == "datetime":
        return qe.DatetimeIndexParams(enable_hnsw=hnsw)
    return qe.FloatIndexParams(enable_hnsw=hnsw)


@dataclass(frozen=True)
class EngineThreads:
    """The engine's thread pools (`IndexSettings.engine_search_threads`, `engine_indexing_threads`).

    `search`: the shard's search pool, which reads a search's segments in parallel (the engine's
    own default is one thread per CPU). `indexing`: the HNSW build's threads, in the child
    process of `optimize`, beside the process serving searches.
    """

    search: int
    indexing: int

    @classmethod
    def from_settings(cls, index: IndexSettings) -> EngineThreads:
        return cls(index.engine_search_threads, index.engine_indexing_threads)


# Qdrant's defaults for the HNSW graph, restated because the binding takes the indexing threads
# only as part of a whole HNSW configuration.
_HNSW_M, _HNSW_EF_CONSTRUCT, _HNSW_FULL_SCAN_KB = 16, 100, 10_000


def edge_config(
    dim: int, optimize_min_unindexed: int, threads: EngineThreads | None = None
) -> qe.EdgeConfig:
    """The shard's engine configuration; `core.index.build` opens a copy with the same one.

    `threads` None leaves the engine's own thread counts (one per CPU).
    """
    # The engine indexes a segment once its vectors pass a size in KB; make that size the point
    # count at which `optimize` asks, so an optimisation that runs indexes something.
    threshold_kb = -(-optimize_min_unindexed * dim * 4 // 1024)
    bounded: dict[str, Any] = {}
    if threads is not None:
        bounded["max_search_threads"] = threads.search
        bounded["hnsw_config"] = qe.HnswIndexConfig(
            m=_HNSW_M,
            ef_construct=_HNSW_EF_CONSTRUCT,
            full_scan_threshold=_HNSW_FULL_SCAN_KB,
            max_indexing_threads=threads.indexing,
        )
    return qe.EdgeConfig(
        vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)},
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=threshold_kb),
        **bounded,
    )


class EdgeIndex(ChunkIndex):
    """One shard directory, owned exclusively by this process for as long as it is open.

    Every engine call holds `_guard` only for the call itself (the binding holds the GIL anyway),
    so `optimize` can swap the shard object under it; writers take `_writes` first, which an
    optimisation holds from its copy of the shard to the swap, so no write is lost to the copy.
    """

    dialect = DIALECT

    def __init__(
        self,
        path: Path,
        dim: int,
        text_index: TextIndexConfig,
        bm25: tuple[float, float],
        optimize_min_unindexed: int,
        threads: EngineThreads | None = None,
    ) -> None:
        self._optimize_min_unindexed = optimize_min_unindexed
        self._threads = threads
        self.path = path
        self._dim = dim
        self._guard = threading.Lock()
        self._writes = threading.Lock()
        self._lock = ShardLock(path)
        self._lock.acquire()
        try:
            _recover_swap(path)
            config = self._config = edge_config(dim, optimize_min_unindexed, threads)
            if (path / "edge_config.json").exists():
                self._shard = qe.EdgeShard.load(str(path.resolve()), config)
            else:
                first = _version(path, 0)
                shutil.rmtree(first, ignore_errors=True)
                self._shard = qe.EdgeShard.create(str(first), config)
                _point(path, first)
                for field, kind in PAYLOAD_INDEXES.items():
                    schema = _schema(field, kind, text_index)
                    self._shard.update(qe.UpdateOperation.create_field_index(field, schema))
        except BaseException:
            self._lock.release()
            raise
        self._bm25 = qe.Bm25Params(k=bm25[0], b=bm25[1])

    def upsert(self, chunks: Sequence[IndexedChunk]) -> None:
        if chunks:
            points = [
                qe.Point(id=c.id, vector={DENSE_VECTOR: c.vector.tolist()}, payload=c.payload)
                for c in chunks
            ]
            with self._writes, self._guard:
                self._shard.update(qe.UpdateOperation.upsert_points(points))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            with self._writes, self._guard:
                self._shard.update(qe.UpdateOperation.delete_points(list(ids)))

    def delete_document(self, scope: TenantScope, doc_id: str) -> None:
        flt = self._scope_filter(scope, doc_id)
        with self._writes, self._guard:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(flt))

    def document_ids(self) -> dict[str, int]:
        request = qe.FacetRequest(key="doc_id", limit=_FACET_LIMIT, exact=True)
        with self._guard:
            facet = self._shard.facet(request)
        # The exact facet keeps values whose points were all deleted, with a count of 0.
        return {str(hit.value): hit.count for hit in facet.hits if hit.count > 0}

    def _leg_query(self, query: EngineQuery, leg: LegName) -> Any:
        if leg == "dense":
            return qe.Query.Nearest(query.dense.tolist(), using=DENSE_VECTOR)
        return qe.TextQuery(TEXT_FIELD, query.text, self._bm25)

    def _leg_params(self, query: EngineQuery, leg: LegName) -> qe.SearchParams | None:
        """BM25 statistics (document count, term frequencies, average length) over the query's
        tenant alone: shard-wide ones let a tenant's scores reveal another tenant's words.
        The corpus is the tenant, not the query's filters, so a filter narrows hits, not idf."""
        if leg == "dense":
            return None
        return qe.SearchParams(idf=qe.IdfParams(corpus=self._scope_filter(query.scope)))

    def _leg_request(self, query: EngineQuery, leg: LegName, limit: int) -> qe.QueryRequest:
        return qe.QueryRequest(
            limit=limit,
            query=self._leg_query(query, leg),
            filter=self._filter(query),
            with_payload=False,
            params=self._leg_params(query, leg),
        )

    def _run(self, requests: list[Any]) -> list[list[Hit]]:
        with self._guard:
            batches = self._shard.query_batch(qe.QueryBatchRequest(requests))
        return [[Hit(str(p.id), p.score, p.payload or {}) for p in batch] for batch in batches]

    def retrieve(
        self, scope: TenantScope, ids: Sequence[str], fields: Sequence[str] | None = None
    ) -> list[Hit]:
        payload = True if fields is None else qe.PayloadSelector.Include([*fields, "tenant_id"])
        with self._guard:
            records = self._shard.retrieve(list(ids), with_payload=payload, with_vector=False)
        return [
            Hit(str(r.id), 0.0, r.payload)
            for r in records
            if r.payload and r.payload.get("tenant_id") == scope.tenant_id
        ]

    def _scroll_page(self, flt: Any, fields: Sequence[str], offset: Any) -> tuple[list[Any], Any]:
        payload = qe.PayloadSelector.Include(list(fields)) if fields else False
        request = qe.ScrollRequest(
            offset=offset, limit=_SCROLL_PAGE, filter=flt, with_payload=payload
        )
        with self._guard:
            return self._shard.scroll(request)

    def count(self, scope: TenantScope | None = None) -> int:
        flt = self._scope_filter(scope)
        with self._guard:
            return self._shard.count(qe.CountRequest(filter=flt, exact=True))

    def generation_record(self) -> dict[str, Any] | None:
        return read_record(self.path)

    def set_generation_record(self, record: dict[str, Any]) -> None:
        write_record(self.path, record)

    def vector_status(self) -> dict[str, int]:
        with self._guard:
            info = self._shard.info()
        return {"points": info.points_count, "indexed_vectors": info.indexed_vectors_count}

    def optimize(self) -> bool:
        """Build the vector index (HNSW, merges, vacuum) once enough points await it.

        Until then dense search scans vectors one by one: at 120k chunks that is 15 ms against
        1.5 ms once indexed. The binding's optimiser holds the GIL for the whole build (about 2 ms
        a point on two cores: 40 s at 20k points, measured), which in-process would stall every
        search for as long. So a copy of the shard is optimised in a child process
        (`core.index.build`) while this one keeps answering from the original; writes wait from
        the copy to the swap, and searches only for the swap of two objects. The shard path is a
        symlink to a versioned folder (`shard.v<N>`), repointed in one atomic replace.
        """
        if not self._needs_optimizing():
            return False
        with self._writes:
            self._shard.flush()  # the engine synchronises its own calls; the guard is for swaps
            current = self.path.resolve()
            built = _version(self.path, _version_number(current) + 1)
            shutil.rmtree(built, ignore_errors=True)
            shutil.copytree(current, built)
            argv = [sys.executable, "-m", "core.index.build", str(built)]
            argv += [str(self._dim), str(self._optimize_min_unindexed)]
            if self._threads is not None:
                argv += [str(self._threads.search), str(self._threads.indexing)]
            subprocess.run(argv, check=True, capture_output=True)
            fresh = qe.EdgeShard.load(str(built), self._config)
            with self._guard:
                old, self._shard = self._shard, fresh
            old.close()  # no search holds it: each holds the guard for its call
            if not self.path.is_symlink():  # a shard from before versioned folders
                current = _version(self.path, 0)
                os.rename(self.path, current)
            _point(self.path, built)
            shutil.rmtree(current)
        return True

    def _needs_optimizing(self) -> bool:
        with self._guard:
            info = self._shard.info()
        return info.points_count - info.indexed_vectors_count >= self._optimize_min_unindexed

    def close(self) -> None:
        if getattr(self, "_shard", None) is not None:
            with self._guard:
                self._shard.flush()
                self._shard.close()
                self._shard = None
        self._lock.release()


def _version(path: Path, number: int) -> Path:
    return path.with_name(f"{path.name}.v{number}")


def _version_number(folder: Path) -> int:
    _, _, number = folder.name.rpartition(".v")
    return int(number) if number.isdigit() else 0


def _point(path: Path, folder: Path) -> None:
    """Make `path` a symlink to `folder` (a sibling) in one atomic replace."""
    link = path.with_name(f"{path.name}.link-tmp")
    link.unlink(missing_ok=True)
    link.symlink_to(folder.name)
    os.replace(link, path)


def _recover_swap(path: Path) -> None:
    """Undo what a crash during an optimisation left: a half-built copy, or a pre-versioning
    shard moved aside but not yet replaced by the link (it is whole: put it back)."""
    legacy = _version(path, 0)
    if not path.exists() and not path.is_symlink() and legacy.is_dir():
        os.rename(legacy, path)
    serving = path.resolve() if path.is_symlink() else None
    for folder in path.parent.glob(f"{path.name}.v*"):
        # Resolved on both sides: under a relative data dir (the default `.rag`) or a symlinked
        # one, the served folder compared unequal to itself and was deleted.
        if folder.is_dir() and folder.resolve() != serving:
            shutil.rmtree(folder)
