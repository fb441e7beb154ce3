"""Qdrant as a server or cluster, through qdrant-client.

`QdrantClient(path=...)` (local mode) runs the same calls in-process, which is how tests exercise
this backend without a server binary.

Generations (`core.generation`): the configured collection name is an alias of the physical
collection serving now, `<collection>__g<fingerprint id>` (`__g0` for the first one). A rebuild
fills the next physical collection beside it, then moves the alias in one
`update_collection_aliases` call and drops the old collection after the grace period. Each
process resolves the alias once, when it opens the index, and keeps using that physical
collection with the model its record names (following the alias on its own would query a new
model's points with the old model), so processes other than the rebuilding one must be
restarted at a switch. A plain collection named like the alias (from before aliases) is served as
it is; the first switch away from it deletes it and then creates the alias: two calls, between
which a process resolving the name finds none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient
from qdrant_client import models as qm

from core.index.base import ChunkIndex
from core.index.dialect import FilterDialect
from core.index.query import EngineQuery, LegName
from core.index.schema import (
    DENSE_VECTOR,
    HNSW_PAYLOAD_FIELDS,
    PAYLOAD_INDEXES,
    TEXT_FIELD,
    TextIndexConfig,
)
from core.types import Hit, IndexedChunk, TenantScope

DIALECT = FilterDialect(
    filter=qm.Filter,
    field=qm.FieldCondition,
    match_value=qm.MatchValue,
    match_any=qm.MatchAny,
    number_range=qm.Range,
    datetime_range=qm.DatetimeRange,
)
_SCROLL_PAGE = 1_000
_GENERATION_KEY = "rag_generation"  # the collection metadata key holding its fingerprint
_UPSERT_BATCH = 256
_GENERATION_SEPARATOR = "__g"
FIRST_GENERATION = "0"  # the physical collection a new deployment starts with


def physical_collection(alias: str, generation: str) -> str:
    """The physical collection of one generation behind the alias the settings name."""
    return f"{alias}{_GENERATION_SEPARATOR}{generation}"


def generation_of(alias: str, collection: str) -> str | None:
    """The generation a physical collection holds; None for the first one or a plain
    collection from before aliases (their data beside the index lives where it always did)."""
    prefix = alias + _GENERATION_SEPARATOR
    if not collection.startswith(prefix) or collection == prefix + FIRST_GENERATION:
        return None
    return collection.removeprefix(prefix)


def served_collection(client: QdrantClient, alias: str) -> str | None:
    """The physical collection the alias points to; the name itself for a plain collection;
    None when neither exists (a new deployment)."""
    for described in client.get_aliases().aliases:
        if described.alias_name == alias:
            return described.collection_name
    return alias if client.collection_exists(alias) else None


def move_alias(client: QdrantClient, alias: str, target: str) -> None:
    """Point the alias at `target`, atomically for every client when the alias exists."""
    served = served_collection(client, alias)
    if served == alias:  # a plain collection: it must go first
        client.delete_collection(alias)
    create = qm.CreateAliasOperation(
        create_alias=qm.CreateAlias(collection_name=target, alias_name=alias)
    )
    operations: list[qm.AliasOperations] = [create]
    if served not in (None, alias):  # a server refuses to delete an alias that is not there
        operations.insert(0, qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=alias)))
    client.update_collection_aliases(change_aliases_operations=operations)


def generation_collections(client: QdrantClient, alias: str) -> list[str]:
    """Every physical collection behind the alias, served or not."""
    prefix = alias + _GENERATION_SEPARATOR
    return [c.name for c in client.get_collections().collections if c.name.startswith(prefix)]


class _SharedClient:
    """One client for the served collection and a rebuild's (local mode locks its folder to
    one client), closed when the last index using it closes."""

    def __init__(self, client: QdrantClient) -> None:
        self.client = client
        self.users = 0

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self.client.close()


def _text_index(cfg: TextIndexConfig) -> qm.TextIndexParams:
    """An empty stemmer or stopwords language (`RAG_BM25_STOPWORDS=''`) is none, as for the
    embedded engine (`core.index.edge._text_index`)."""
    return qm.TextIndexParams(
        type=qm.TextIndexType.TEXT,
        tokenizer=qm.TokenizerType.WORD,
        lowercase=cfg.lowercase,
        ascii_folding=cfg.ascii_folding,
        stemmer=(
            qm.SnowballParams(type=qm.Snowball.SNOWBALL, language=cfg.stemmer)
            if cfg.stemmer
            else None
        ),
        stopwords=cfg.stopwords or None,
        scoring=True,
        enable_hnsw=False,
    )


def _schema(field: str, kind: str, cfg: TextIndexConfig) -> Any:
    """`is_tenant` on tenant_id: Qdrant keeps each tenant's points together and plans around it."""
    hnsw = field in HNSW_PAYLOAD_FIELDS
    if kind == "text":
        return _text_index(cfg)
    if kind == "keyword":
        return qm.KeywordIndexParams(
            type=qm.KeywordIndexType.KEYWORD, is_tenant=field == "tenant_id", enable_hnsw=hnsw
        )
    if kind == "integer":
        return qm.IntegerIndexParams(
            type=qm.IntegerIndexType.INTEGER, lookup=True, range=True, enable_hnsw=hnsw
        )
    if kind == "datetime":
        return qm.DatetimeIndexParams(type=qm.DatetimeIndexType.DATETIME, enable_hnsw=hnsw)
    return qm.FloatIndexParams(type=qm.FloatIndexType.FLOAT, enable_hnsw=hnsw)


def is_local_mode(client: QdrantClient) -> bool:
    """qdrant-client's in-process stand-in (`path=` or `":memory:"`) rather than a server."""
    options = client.init_options
    return options["path"] is not None or options["location"] == ":memory:"


@dataclass(frozen=True)
class ClusterLayout:
    """How a new collection spreads over a Qdrant cluster; None leaves the server's default."""

    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


class ServerIndex(ChunkIndex):
    """One collection on a Qdrant server; any number of processes may share it.

    BM25 legs ask the server for statistics over the query's tenant alone (`SearchParams.idf`, an
    idf corpus: the tenant filter), as `EdgeIndex` asks the embedded engine, so a tenant's scores
    never reveal another tenant's words. qdrant-client documents that parameter for "BM25 over a
    text index"; it was checked on the embedded engine (tests/test_index.py) and in the requests
    this class builds, not against a running server, which is not available here.

    qdrant-client's local mode refuses an idf corpus on a text query (NotImplementedError), so
    for a local client `tenant_statistics` is off and BM25 scores over every tenant's points:
    local mode serves one user's experiments and the tests, not tenants who must not learn of
    each other's documents.
    """

    dialect = DIALECT

    def __init__(
        self,
        client: QdrantClient | _SharedClient,
        collection: str,
        dim: int,
        text_index: TextIndexConfig,
        bm25: tuple[float, float],
        layout: ClusterLayout | None = None,
    ) -> None:
        raw = client.client if isinstance(client, _SharedClient) else client
        if is_local_mode(raw) and not text_index.plain:
            # Its text queries raise NotImplementedError on any other tokenization: refuse now.
            raise ValueError(
                "qdrant-client's local mode (RAG_QDRANT_PATH) scores BM25 on lowercased words "
                "only; set RAG_BM25_STEMMER='', RAG_BM25_STOPWORDS='' and "
                "RAG_BM25_ASCII_FOLDING=false, or use a Qdrant server (RAG_QDRANT_URL) or "
                "RAG_INDEX_MODE=edge"
            )
        self._shared = client if isinstance(client, _SharedClient) else _SharedClient(client)
        self._shared.users += 1
        client = self._client = self._shared.client
        self._collection = collection
        self._bm25 = qm.Bm25Scoring(bm25=qm.Bm25Params(k=bm25[0], b=bm25[1]))
        self.tenant_statistics = not is_local_mode(client)
        self._bm25_params = bm25
        self._text_index = text_index
        self._layout = layout
        if not client.collection_exists(collection):
            client.create_collection(
                collection,
                vectors_config={
                    DENSE_VECTOR: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)
                },
                **asdict(layout or ClusterLayout()),
            )
            for field, kind in PAYLOAD_INDEXES.items():
                schema = _schema(field, kind, text_index)
                client.create_payload_index(collection, field, schema, wait=True)
        else:
            existing = client.get_collection(collection).config.params.vectors[DENSE_VECTOR].size
            # A stamped collection's dimension is in its fingerprint, which a rebuild follows.
            if existing != dim and self.generation_record() is None:
                raise ValueError(
                    f"collection {collection!r} holds {existing}-d vectors but the embedding "
                    f"model makes {dim}-d ones; use another collection or re-index"
                )

    @classmethod
    def open_served(
        cls,
        client: QdrantClient,
        alias: str,
        dim: int,
        text_index: TextIndexConfig,
        bm25: tuple[float, float],
        layout: ClusterLayout | None = None,
    ) -> ServerIndex:
        """The collection the alias serves, resolved now; a new deployment's first one, with
        the alias pointing to it, when there is none."""
        served = served_collection(client, alias)
        if served is not None:
            return cls(client, served, dim, text_index, bm25, layout)
        first_name = physical_collection(alias, FIRST_GENERATION)
        first = cls(client, first_name, dim, text_index, bm25, layout)
        move_alias(client, alias, first.collection)
        return first

    @property
    def client(self) -> QdrantClient:
        return self._client

    @property
    def collection(self) -> str:
        """The physical collection this index reads and writes."""
        return self._collection

    def sibling(self, collection: str, dim: int) -> ServerIndex:
        """Another collection (a rebuild's) on the same client, made like this one."""
        text, layout = self._text_index, self._layout
        return ServerIndex(self._shared, collection, dim, text, self._bm25_params, layout)

    def serve_as(self, alias: str) -> None:
        """Make this collection the one the alias serves."""
        move_alias(self._client, alias, self._collection)

    def drop(self) -> None:
        """Delete this collection (a retired generation); the client stays open for others."""
        self._client.delete_collection(self._collection)

    def upsert(self, chunks: Sequence[IndexedChunk]) -> None:
        for start in range(0, len(chunks), _UPSERT_BATCH):
            batch = chunks[start : start + _UPSERT_BATCH]
            points = [
                qm.PointStruct(id=c.id, vector={DENSE_VECTOR: c.vector.tolist()}, payload=c.payload)
                for c in batch
            ]
            self._client.upsert(self._collection, points, wait=True)

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._client.delete(self._collection, qm.PointIdsList(points=list(ids)), wait=True)

    def delete_document(self, scope: TenantScope, doc_id: str) -> None:
        flt = self._scope_filter(scope, doc_id)
        self._client.delete(self._collection, qm.FilterSelector(filter=flt), wait=True)

    def document_ids(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, payload in self.scroll(None, ("doc_id",)):
            counts[payload["doc_id"]] = counts.get(payload["doc_id"], 0) + 1
        return counts

    def _leg_request(self, query: EngineQuery, leg: LegName, limit: int) -> qm.QueryRequest:
        flt = self._filter(query)
        if leg == "dense":
            dense = query.dense.tolist()
            return qm.QueryRequest(query=dense, using=DENSE_VECTOR, filter=flt, limit=limit)
        text = qm.TextQuery(text=qm.TextQueryInput(query=query.text, scoring=self._bm25))
        params = None
        if self.tenant_statistics:
            corpus = qm.IdfCorpusParams(corpus=self._scope_filter(query.scope))
            params = qm.SearchParams(idf=corpus)
        return qm.QueryRequest(
            query=text,
            using=TEXT_FIELD,
            filter=flt,
            limit=limit,
            params=params,
        )

    def _run(self, requests: list[Any]) -> list[list[Hit]]:
        """Scores at the engine's precision, float32: local mode computes dense scores in
        float64, whose last digits depend on the point's row in its matrix (identical chunks
        scored 0.8064638823436986 and ...985), so ties would follow the order of writing."""
        responses = self._client.query_batch_points(self._collection, requests)
        return [
            [Hit(str(p.id), float(np.float32(p.score)), p.payload or {}) for p in r.points]
            for r in responses
        ]

    def retrieve(
        self, scope: TenantScope, ids: Sequence[str], fields: Sequence[str] | None = None
    ) -> list[Hit]:
        payload = True if fields is None else [*fields, "tenant_id"]
        records = self._client.retrieve(self._collection, list(ids), with_payload=payload)
        return [
            Hit(str(r.id), 0.0, r.payload)
            for r in records
            if r.payload and r.payload.get("tenant_id") == scope.tenant_id
        ]

    def _scroll_page(self, flt: Any, fields: Sequence[str], offset: Any) -> tuple[list[Any], Any]:
        payload = list(fields) if fields else False
        return self._client.scroll(
            self._collection, flt, limit=_SCROLL_PAGE, offset=offset, with_payload=payload
        )

    def count(self, scope: TenantScope | None = None) -> int:
        flt = self._scope_filter(scope)
        return self._client.count(self._collection, flt, exact=True).count

    def generation_record(self) -> dict[str, Any] | None:
        metadata = self._client.get_collection(self._collection).config.metadata or {}
        return metadata.get(_GENERATION_KEY)

    def set_generation_record(self, record: dict[str, Any]) -> None:
        self._client.update_collection(self._collection, metadata={_GENERATION_KEY: record})

    def vector_status(self) -> dict[str, int]:
        info = self._client.get_collection(self._collection)
        return {
            "points": info.points_count or 0,
            "indexed_vectors": info.indexed_vectors_count or 0,
        }

    def close(self) -> None:
        self._shared.release()
