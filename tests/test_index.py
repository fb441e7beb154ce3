"""The index contract, run against both Qdrant backends with real vectors from the real model."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient
from rank_bm25 import BM25Okapi

from core.embedding import Embedder
from core.index import ChunkIndex, FieldFilter, Range, ShardLockedError
from core.index.ranking import rrf
from core.index.schema import PAYLOAD_INDEXES
from core.index.server import ServerIndex
from core.types import IndexedChunk, InvalidTenantError, TenantScope, chunk_point_id
from tests.support.engine import (
    PLAIN_WORDS,
    bm25_params,
    edge_index,
    engine_query,
    local_server_index,
    open_backend,
)

A, B = TenantScope("a"), TenantScope("b")

CORPUS = [
    "the heart pumps blood through arteries and veins",
    "blood pressure rises with salt intake in many adults",
    "vaccines train the immune system to recognise a virus",
    "a virus replicates inside host cells",
    "arteries harden with age and cholesterol",
    "the immune system attacks infected host cells",
    "salt and water balance is regulated by the kidneys",
    "kidneys filter blood and produce urine",
]


@pytest.fixture
def index(tmp_path: Path, backend: str, embedder: Embedder) -> Iterator[ChunkIndex]:
    """Both tenants hold the same corpus; tenant b also has one private document."""
    idx = open_backend(backend, tmp_path, embedder.dim)
    vectors = embedder.embed_documents([*CORPUS, "a private note for tenant b about kidneys"])
    chunks = []
    for scope in (A, B):
        for i, text in enumerate(CORPUS):
            payload = {
                "tenant_id": scope.tenant_id,
                "doc_id": f"d{i}",
                "text": text,
                "size": i * 100,
                "modified_at": datetime(2024, 1, 1 + i, tzinfo=UTC).isoformat(),
                "meta": {"topic": "cardio" if i in (0, 1, 4) else "other"},
            }
            chunks.append(
                IndexedChunk(chunk_point_id(scope.tenant_id, f"d{i}", text), vectors[i], payload)
            )
    private = {
        "tenant_id": "b",
        "doc_id": "secret",
        "text": "a private note for tenant b about kidneys",
    }
    chunks.append(IndexedChunk(chunk_point_id("b", "secret", "x"), vectors[-1], private))
    idx.upsert(chunks)
    yield idx
    idx.close()


def test_unscoped_queries_cannot_be_built() -> None:
    with pytest.raises(TypeError):
        engine_query("a", limit=1, text="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine_query(None, limit=1, text="x")  # type: ignore[arg-type]
    for bad in ("", "*", "../a", "a b", "a/b", "x" * 65):
        with pytest.raises(InvalidTenantError):
            TenantScope(bad)


def test_every_mode_stays_inside_the_tenant(index: ChunkIndex, embedder: Embedder) -> None:
    vector = embedder.embed_query("private note about kidneys")
    for dense, text in ((vector, None), (None, "private kidneys"), (vector, "private kidneys")):
        hits = index.search(engine_query(A, limit=20, dense=dense, text=text))
        assert hits and {h.payload["tenant_id"] for h in hits} == {"a"}
        assert "secret" not in {h.payload["doc_id"] for h in hits}
    hits = index.search(engine_query(B, limit=1, dense=vector, text="private kidneys"))
    assert hits[0].payload["doc_id"] == "secret"
    assert (index.count(A), index.count(B), index.count()) == (8, 9, 17)
    assert index.retrieve(A, [hits[0].id]) == []


def test_hybrid_is_rrf_over_the_single_leg_rankings(index: ChunkIndex, embedder: Embedder) -> None:
    query = "blood pressure and salt"
    vector = embedder.embed_query(query)
    dense = index.search(engine_query(A, limit=8, dense=vector))
    bm25 = index.search(engine_query(A, limit=8, text=query))
    expected = rrf({"dense": dense, "bm25": bm25}, k=60)
    fused = index.search(
        engine_query(A, limit=8, dense=vector, text=query, candidates=8, with_leg_ranks=True)
    )
    assert [h.id for h in fused] == [f.id for f in expected][: len(fused)]
    for hit, ref in zip(fused, expected, strict=False):
        assert math.isclose(hit.score, ref.score, rel_tol=1e-5)
        assert hit.leg_ranks == ref.leg_ranks


def _lucene_bm25(corpus: list[list[str]], k1: float = 1.2, b: float = 0.75) -> BM25Okapi:
    """rank-bm25's Okapi BM25 with Lucene's non-negative idf, the variant Qdrant implements."""

    class LuceneBM25(BM25Okapi):
        def _calc_idf(self, nd: dict[str, int]) -> None:
            self.idf = {
                w: math.log(1 + (self.corpus_size - n + 0.5) / (n + 0.5)) for w, n in nd.items()
            }

    return LuceneBM25(corpus, k1=k1, b=b)


def test_engine_bm25_matches_the_rank_bm25_oracle(index: ChunkIndex, backend: str) -> None:
    # The embedded engine keeps BM25 statistics (idf, average length) per tenant: the oracle sees
    # tenant a's 8 points. qdrant-client's local mode cannot scope them (see ServerIndex) and
    # scores over all 17; a Qdrant server is asked for tenant statistics like the embedded engine.
    private = "a private note for tenant b about kidneys"
    corpus = CORPUS if backend == "edge" else [*CORPUS, *CORPUS, private]
    oracle = _lucene_bm25([t.split() for t in corpus])
    for query in ("blood", "immune system virus", "salt kidneys blood", "host cells"):
        expected = oracle.get_scores(query.split())[: len(CORPUS)]
        hits = index.search(engine_query(A, limit=8, text=query))
        got = {h.payload["doc_id"]: h.score for h in hits}
        want = {f"d{i}": s for i, s in enumerate(expected) if s > 0}
        assert got.keys() == want.keys(), query
        for doc, score in want.items():
            assert math.isclose(got[doc], score, rel_tol=0.02), (query, doc)


@pytest.mark.parametrize("backend", ["edge", "server"])
def test_bm25_k1_and_b_reach_the_engine(tmp_path: Path, backend: str) -> None:
    """Settings the server backend once dropped silently (it scored with 1.2 and 0.75)."""
    k1, b = 2.0, 0.1
    if backend == "edge":
        idx: ChunkIndex = edge_index(tmp_path / "shard", 4, bm25=(k1, b))
    else:
        idx = local_server_index(tmp_path / "local", 4, bm25=(k1, b))
    try:
        idx.upsert(
            [
                IndexedChunk(
                    chunk_point_id("a", f"d{i}", text),
                    np.ones(4),
                    {"tenant_id": "a", "doc_id": f"d{i}", "text": text},
                )
                for i, text in enumerate(CORPUS)
            ]
        )
        oracle = _lucene_bm25([t.split() for t in CORPUS], k1, b)
        for query in ("blood", "salt kidneys blood"):
            expected = oracle.get_scores(query.split())
            got = _bm25_scores(idx, A, query)
            want = {f"d{i}": s for i, s in enumerate(expected) if s > 0}
            assert got.keys() == want.keys(), query
            for doc, score in want.items():
                assert math.isclose(got[doc], score, rel_tol=0.02), (query, doc)
    finally:
        idx.close()


def _bm25_scores(index: ChunkIndex, scope: TenantScope, text: str) -> dict[str, float]:
    hits = index.search(engine_query(scope, limit=50, text=text))
    return {h.payload["doc_id"]: h.score for h in hits}


def test_a_tenants_bm25_scores_depend_on_its_own_documents_only(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Issue 13, finding 12: with shard-wide statistics acme's scores fell when globex added
    documents holding the query's words, so acme could tell which words globex's documents hold.
    """
    acme, globex = TenantScope("acme"), TenantScope("globex")
    vector = embedder.embed_query("x")

    def chunk(scope: TenantScope, doc: str, text: str) -> IndexedChunk:
        payload = {"tenant_id": scope.tenant_id, "doc_id": doc, "text": text}
        return IndexedChunk(chunk_point_id(scope.tenant_id, doc, text), vector, payload)

    acme_docs = [chunk(acme, f"a{i}", text) for i, text in enumerate(CORPUS)]
    acme_docs.append(chunk(acme, "probe", "zebra and quokka sightings"))
    # globex's own words, long documents (another average length) and two of acme's words
    globex_docs = [
        chunk(globex, f"g{i}", f"quokka merger blood pressure report number {i} " * 3)
        for i in range(5)
    ]
    queries = ("blood pressure", "quokka", "zebra", "merger", "salt kidneys blood")
    index = edge_index(tmp_path / "shard", embedder.dim)
    try:
        index.upsert(acme_docs)
        alone = {q: _bm25_scores(index, acme, q) for q in queries}
        index.upsert(globex_docs)
        beside = {q: _bm25_scores(index, acme, q) for q in queries}
        globex_only = _bm25_scores(index, acme, "blood merger")
        nowhere = _bm25_scores(index, acme, "blood xyzzy")
        globex_sees = _bm25_scores(index, globex, "quokka")
    finally:
        index.close()
    assert alone == beside
    # "quokka" (also in globex) and "zebra" (in acme only) score acme's probe alike: its one
    # occurrence of either word, among acme's 9 documents
    assert set(beside["quokka"]) == {"probe"} and beside["quokka"] == beside["zebra"]
    assert beside["merger"] == {}  # globex's word reaches no acme document
    assert globex_only == nowhere  # and beside acme's words it counts as a word nobody has
    assert set(globex_sees) == {f"g{i}" for i in range(5)}


def test_a_server_is_asked_for_tenant_bm25_statistics(tmp_path: Path) -> None:
    """What a Qdrant server receives: BM25 legs carry the tenant as their idf corpus, dense legs
    none. Only the requests are checked: local mode refuses an idf corpus on a text query (so it
    scores over every tenant, see ServerIndex) and no Qdrant server runs here."""
    from qdrant_client import models as qm

    from core.index.server import is_local_mode

    remote = QdrantClient(url="http://127.0.0.1:9", check_compatibility=False)  # never called
    assert not is_local_mode(remote) and is_local_mode(QdrantClient(":memory:"))
    remote.close()
    index = local_server_index(tmp_path / "local", 4)
    assert index.tenant_statistics is False
    index.tenant_statistics = True  # what a remote client gets: the requests a server would see
    try:
        query = engine_query(A, limit=3, dense=np.ones(4), text="blood")
        bm25 = index._leg_request(query, "bm25", 3)
        assert bm25.params.idf == qm.IdfCorpusParams(corpus=index._scope_filter(A))
        assert index._leg_request(query, "dense", 3).params is None
    finally:
        index.close()


def test_filters_on_keywords_numbers_dates_and_sidecar_fields(index: ChunkIndex) -> None:
    def docs(*filters: FieldFilter) -> set[str]:
        return {
            h.payload["doc_id"]
            for h in index.search(
                engine_query(
                    A,
                    20,
                    text="the blood salt immune virus cells kidneys arteries",
                    filters=filters,
                )
            )
        }

    assert docs(FieldFilter("doc_id", "eq", "d1")) == {"d1"}
    assert docs(FieldFilter("doc_id", "any", ("d1", "d3"))) == {"d1", "d3"}
    assert docs(FieldFilter("size", "range", Range(gte=500))) == {"d5", "d6", "d7"}
    since = datetime(2024, 1, 7, tzinfo=UTC)
    assert docs(FieldFilter("modified_at", "range", Range(gte=since))) == {"d6", "d7"}
    assert docs(FieldFilter("meta.topic", "eq", "cardio")) == {"d0", "d1", "d4"}
    with pytest.raises(ValueError):
        Range()
    with pytest.raises(ValueError):
        Range(gte=1, lte=since)


def test_document_ids_delete_document_and_chunk_ids(index: ChunkIndex) -> None:
    assert index.document_ids()["d0"] == 2  # one chunk per tenant
    index.delete_document(A, "d0")
    assert index.chunk_ids(A, "d0") == set()
    assert len(index.chunk_ids(B, "d0")) == 1
    assert index.document_ids()["d0"] == 1


def test_a_second_owner_of_the_shard_is_refused(tmp_path: Path) -> None:
    first = edge_index(tmp_path / "shard", 4)
    with pytest.raises(ShardLockedError, match=r"pid \d+"):
        edge_index(tmp_path / "shard", 4)
    first.close()
    edge_index(tmp_path / "shard", 4).close()


def test_a_killed_owner_releases_the_shard(tmp_path: Path) -> None:
    holder = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from tests.support.engine import edge_index
        edge_index(Path({str(tmp_path / "shard")!r}), 4)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    with pytest.raises(ShardLockedError, match=str(proc.pid)):
        edge_index(tmp_path / "shard", 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reopened = edge_index(tmp_path / "shard", 4)
    reopened.upsert(
        [
            IndexedChunk(
                "00000000-0000-0000-0000-000000000001",
                np.ones(4),
                {"tenant_id": "a", "doc_id": "x", "text": "ok"},
            )
        ]
    )
    assert reopened.count(A) == 1
    reopened.close()


@pytest.mark.parametrize("reach", ["relative", "symlinked"])
def test_a_shard_reopens_whole_under_any_path_to_it(
    tmp_path: Path, reach: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served folder is found through the `shard` symlink; reached by a relative path (the
    default data dir, `.rag`) or through a symlinked folder, it used to be taken for a stale
    copy and deleted on reopen, and the shard came back empty."""
    (tmp_path / "real").mkdir()
    monkeypatch.chdir(tmp_path)
    if reach == "relative":
        shard = Path("real") / "shard"
    else:
        (tmp_path / "via").symlink_to(tmp_path / "real")
        shard = tmp_path / "via" / "shard"
    index = edge_index(shard, 4)
    point = {"tenant_id": "a", "doc_id": "x", "text": "ok"}
    index.upsert([IndexedChunk("00000000-0000-0000-0000-000000000001", np.ones(4), point)])
    index.close()
    for _ in range(2):
        reopened = edge_index(shard, 4)
        assert reopened.count(A) == 1
        reopened.close()


def test_edge_index_builds_its_vector_index_when_enough_points_wait(
    tmp_path: Path, embedder: Embedder
) -> None:
    """The embedded engine builds HNSW only when asked, and only once `optimize_min_unindexed`
    points wait for it; search answers the same before and after."""
    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((600, embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    idx = edge_index(tmp_path / "shard", embedder.dim, optimize_min_unindexed=400)
    try:

        def write(first: int, last: int) -> None:
            idx.upsert(
                [
                    IndexedChunk(
                        chunk_point_id("a", f"d{i}", str(i)),
                        vectors[i],
                        {"tenant_id": "a", "doc_id": f"d{i}", "text": f"chunk number {i}"},
                    )
                    for i in range(first, last)
                ]
            )

        write(0, 300)
        assert idx.optimize() is False  # 300 waiting: cheaper to scan than to index
        write(300, 600)
        dense = engine_query(A, limit=10, dense=vectors[7])
        hybrid = engine_query(A, limit=10, dense=vectors[7], text="chunk number 7")
        before = [h.id for h in idx.search(dense)]
        assert idx.optimize() is True
        assert idx.optimize() is False  # nothing left to index
        assert [h.id for h in idx.search(dense)] == before
        assert idx.search(hybrid)[0].id == before[0] == chunk_point_id("a", "d7", "7")
        assert idx.count(A) == 600
    finally:
        idx.close()


def test_a_server_optimises_on_its_own(tmp_path: Path, embedder: Embedder) -> None:
    idx = open_backend("server", tmp_path, embedder.dim)
    try:
        assert idx.optimize() is False
    finally:
        idx.close()


class RecordingClient(QdrantClient):
    """qdrant-client's local mode, recording what collection creation asks of the server: a
    stand-in for a Qdrant cluster, which cannot run here (local mode ignores layouts)."""

    def __init__(self, path: str) -> None:
        super().__init__(path=path)
        self.created: dict = {}
        self.indexes: dict = {}

    def create_collection(self, name: str, **kwargs: object) -> bool:  # type: ignore[override]
        self.created = kwargs
        return super().create_collection(name, **kwargs)  # type: ignore[arg-type]

    def create_payload_index(self, name: str, field: str, schema: object, **kw: object) -> object:  # type: ignore[override]
        self.indexes[field] = schema
        return super().create_payload_index(name, field, schema, **kw)  # type: ignore[arg-type]


def test_a_new_collection_takes_the_cluster_layout_and_a_tenant_index(tmp_path: Path) -> None:
    from qdrant_client import models as qm

    from core.index.server import ClusterLayout

    client = RecordingClient(str(tmp_path / "local"))
    ServerIndex(client, "chunks", 8, PLAIN_WORDS, bm25_params(), ClusterLayout(6, 2, 2)).close()
    assert (
        client.created["shard_number"],
        client.created["replication_factor"],
        client.created["write_consistency_factor"],
    ) == (6, 2, 2)
    tenant = client.indexes["tenant_id"]
    assert isinstance(tenant, qm.KeywordIndexParams) and tenant.is_tenant
    assert set(client.indexes) == set(PAYLOAD_INDEXES)
