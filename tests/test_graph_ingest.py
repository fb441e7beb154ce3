"""The graph kept in step with real documents through real ingestion (engine, model, files), on
the two-hop corpus of tests/support/graph.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import networkx as nx
import pytest
import redis

from core.embedding import Embedder
from core.index.ranking import rrf
from core.runtime import Runtime
from core.types import TenantScope
from graph.extract import RuleExtractor
from graph.model import TenantGraph
from graph.store import FileGraphStore, GraphStore, RedisGraphStore
from graph.updater import GraphUpdater
from ingest.bucket import LocalBucket
from ingest.service import Ingestion
from retrieval.hybrid import HybridRetriever, RetrievalConfig
from tests.support.documents import make_markdown, make_text
from tests.support.engine import graph_leg
from tests.support.graph import DOC1, DOC2, QUESTION, ZEPHYR_PARAGRAPHS, two_hop_corpus, write
from tests.support.services import redis_url
from tests.support.settings import make_settings

ACME = TenantScope("acme")
GLOBEX = TenantScope("globex")
TOP_K = 3
REDIS_DB = 12  # this suite's keys live under a random prefix in this database


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    if request.param == "file":
        yield FileGraphStore(tmp_path / "graph")
        return
    client = redis.Redis.from_url(redis_url(REDIS_DB))
    prefix = f"test-graph-{uuid4().hex}"
    yield RedisGraphStore(client, prefix=prefix)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


@pytest.fixture
def runtime(tmp_path: Path, embedder: Embedder) -> Iterator[Runtime]:
    # Small chunks, so an edit to one paragraph leaves the other chunks of a document unchanged.
    # The test wires its own updater (over each store kind), not the runtime's default one.
    settings = make_settings(tmp_path, chunk_size=40, chunk_overlap=0, graph_enabled=False)
    rt = Runtime(settings, embedder)
    yield rt
    rt.close()


@pytest.fixture
def updater(store: GraphStore) -> GraphUpdater:
    return GraphUpdater(store, RuleExtractor())


@pytest.fixture
def bucket(runtime: Runtime, tmp_path: Path, updater: GraphUpdater) -> Path:
    """The two-hop corpus, ingested with the graph updater listening."""
    root = tmp_path / "bucket"
    two_hop_corpus(root)
    ingest(runtime, root, updater)
    return root


def ingest(runtime: Runtime, root: Path, updater: GraphUpdater) -> None:
    Ingestion(runtime, LocalBucket(root), listeners=[updater]).run()


def doc_of(runtime: Runtime, scope: TenantScope, ids: list[str]) -> list[str]:
    by_id = {h.id: h.payload["doc_id"] for h in runtime.index.retrieve(scope, ids)}
    return [by_id[i] for i in ids]


def graph_of(store: GraphStore, scope: TenantScope) -> TenantGraph:
    with store.read(scope) as graph:
        return graph


def assert_exact(store: GraphStore, scope: TenantScope) -> None:
    """The incrementally kept graph equals a rebuild from what the documents contribute now."""
    graph = graph_of(store, scope)
    rebuilt = TenantGraph.from_documents(graph.docs.items())
    assert nx.utils.graphs_equal(graph.g, rebuilt.g)
    assert all(graph.g.nodes[k]["chunks"] for k in graph.g)


def test_two_hop_question_is_answered_by_the_graph_leg(
    runtime: Runtime, bucket: Path, store: GraphStore, updater: GraphUpdater
) -> None:
    retriever = HybridRetriever(
        runtime.index, runtime.embedder, RetrievalConfig.from_settings(runtime.settings.retrieval)
    )
    dense = [h.id for h in retriever.retrieve(ACME, QUESTION, TOP_K, mode="dense")]
    bm25 = [h.id for h in retriever.retrieve(ACME, QUESTION, TOP_K, mode="bm25")]
    hybrid = [h.id for h in retriever.retrieve(ACME, QUESTION, TOP_K, mode="hybrid")]
    assert DOC1 in doc_of(runtime, ACME, dense)
    for ranking in (dense, bm25, hybrid):
        assert DOC2 not in doc_of(runtime, ACME, ranking)

    leg = graph_leg(store)
    assert graph_of(store, ACME).mentioned_in(QUESTION) == ["marta-kowalski"]
    graph_ids = leg.rank(ACME, QUESTION)
    graph_docs = doc_of(runtime, ACME, graph_ids)
    # Hop 0: doc 1 names Marta Kowalski; hop 1: doc 2's chunks name the Zephyr Initiative.
    assert graph_docs[0] == DOC1
    assert set(graph_docs[1:]) == {DOC2}
    texts = {h.id: h.payload["text"] for h in runtime.index.retrieve(ACME, graph_ids)}
    [answer] = [i for i in graph_ids if "Quillon Harbour" in texts[i]]
    assert answer in graph_ids[:TOP_K]

    deep_dense = retriever.retrieve(ACME, QUESTION, 50, mode="dense")
    deep_bm25 = retriever.retrieve(ACME, QUESTION, 50, mode="bm25")
    graph_hits = {h.id: h for h in runtime.index.retrieve(ACME, graph_ids)}
    graph = [graph_hits[i] for i in graph_ids]
    fused = rrf({"dense": deep_dense, "bm25": deep_bm25, "graph": graph}, k=60, limit=TOP_K)
    assert answer in [f.id for f in fused]
    assert_exact(store, ACME)


def test_deleting_doc1_removes_the_link_and_its_orphans(
    runtime: Runtime, bucket: Path, store: GraphStore, updater: GraphUpdater
) -> None:
    before = graph_of(store, ACME)
    assert before.g.has_edge("marta-kowalski", "zephyr-initiative")
    assert {"marta-kowalski", "gdansk"} <= set(before.g)

    (bucket / DOC1).unlink()
    ingest(runtime, bucket, updater)

    graph = graph_of(store, ACME)
    assert "marta-kowalski" not in graph.g
    assert "gdansk" not in graph.g  # named only in doc 1
    assert "zephyr-initiative" in graph.g  # doc 2 still names it
    assert DOC1 not in graph.docs
    supported = {cid for doc in graph.docs.values() for cid in doc}
    assert all(graph.g.nodes[k]["chunks"] <= supported for k in graph.g)
    leg = graph_leg(store)
    assert graph_of(store, ACME).mentioned_in(QUESTION) == []
    assert leg.rank(ACME, QUESTION) == []
    assert_exact(store, ACME)


def test_editing_doc2_removes_its_dropped_entities_and_reextracts_only_the_edit(
    runtime: Runtime, bucket: Path, store: GraphStore, updater: GraphUpdater
) -> None:
    doc2_chunks = len(graph_of(store, ACME).docs[DOC2])
    assert doc2_chunks >= 3
    assert "nordvik-energy" in graph_of(store, ACME).g
    extracted = updater.chunks_extracted

    edited = [*ZEPHYR_PARAGRAPHS[:2], "Engineers of the initiative now test wave buoys alone."]
    write(bucket, DOC2, make_markdown("Zephyr Initiative", edited))
    ingest(runtime, bucket, updater)

    graph = graph_of(store, ACME)
    assert "nordvik-energy" not in graph.g
    assert not graph.g.has_edge("nordvik-energy", "zephyr-initiative")
    assert "quillon-harbour" in graph.g  # untouched paragraphs keep their entities
    # The Zephyr Initiative keeps doc 2's remaining support and doc 1's.
    assert graph.g.nodes["zephyr-initiative"]["chunks"] == {
        cid
        for doc in graph.docs.values()
        for cid, x in doc.items()
        if any(e.key == "zephyr-initiative" for e in x.entities)
    }
    assert updater.chunks_extracted - extracted == 1  # one chunk changed, one extracted
    assert_exact(store, ACME)


def test_tenants_graphs_never_mix(
    runtime: Runtime, bucket: Path, store: GraphStore, updater: GraphUpdater
) -> None:
    write(
        bucket,
        "tenants/globex/zephyr.txt",
        make_text(["The Zephyr Initiative at Globex is run by Ivo Brandt from Lyon."]),
    )
    ingest(runtime, bucket, updater)
    leg = graph_leg(store)

    assert graph_of(store, GLOBEX).mentioned_in(QUESTION) == []  # Marta Kowalski is acme's
    globex_ids = leg.rank(GLOBEX, "What does Ivo Brandt run?")
    assert globex_ids
    assert doc_of(runtime, GLOBEX, globex_ids) == ["tenants/globex/zephyr.txt"] * len(globex_ids)
    acme_ids = leg.rank(ACME, "Zephyr Initiative")
    assert set(doc_of(runtime, ACME, acme_ids)) == {DOC1, DOC2}

    globex, acme = graph_of(store, GLOBEX), graph_of(store, ACME)
    assert "ivo-brandt" in globex.g and "ivo-brandt" not in acme.g
    assert "quillon-harbour" in acme.g and "quillon-harbour" not in globex.g
    globex_chunks = set().union(*(globex.g.nodes[k]["chunks"] for k in globex.g))
    assert len(runtime.index.retrieve(GLOBEX, sorted(globex_chunks))) == len(globex_chunks)
    assert runtime.index.retrieve(ACME, sorted(globex_chunks)) == []


def test_file_store_reloads_what_ingestion_built(runtime: Runtime, tmp_path: Path) -> None:
    store = FileGraphStore(tmp_path / "graph")
    updater = GraphUpdater(store, RuleExtractor())
    root = tmp_path / "bucket"
    two_hop_corpus(root)
    ingest(runtime, root, updater)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "graph" / "acme").glob("*.json")}
    assert len(files) == 6

    write(root, DOC2, make_markdown("Zephyr Initiative", ZEPHYR_PARAGRAPHS[:2]))
    ingest(runtime, root, updater)
    changed = [p for p, mtime in files.items() if p.stat().st_mtime_ns != mtime]
    assert len(changed) == 1  # the edit rewrote doc 2's file and no other

    reloaded = FileGraphStore(tmp_path / "graph")
    assert nx.utils.graphs_equal(graph_of(reloaded, ACME).g, graph_of(store, ACME).g)
    assert graph_of(reloaded, ACME).docs == graph_of(store, ACME).docs
    assert os.listdir(tmp_path / "graph") == ["acme"]
