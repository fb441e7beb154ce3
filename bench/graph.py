"""Knowledge graph on SciFact: build cost, memory, the cost of one edit, and what the leg adds.

    python bench/graph.py [--dataset ../shared/data/scifact] [--skip-quality] [--redis]

The corpus is mirrored into the evaluation workspace's bucket (`eval.workspace`, under
bench/.work/graph) and every document is parsed and chunked exactly as ingestion does, so graph
chunk ids are the index's point ids. Then, in one process:
  1. build: all documents through `GraphUpdater` (rule extractor) into a fresh file store, against
     a peer pass of the extractor alone; with --redis, the same build into Redis (db 12);
  2. memory: a fresh store lazily loading the persisted graph, measured with tracemalloc;
  3. update: one document edited (a sentence replaced), then deleted and restored: seconds per
     operation against the full build and against the mean cost of one document in the build;
  4. quality (unless --skip-quality): the corpus ingested into the workspace's embedded shard
     (embedded once; later runs find it unchanged), then NDCG@10 over the judged test queries of
     engine hybrid, Python RRF of dense + BM25, and RRF of dense + BM25 + graph.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import networkx as nx  # noqa: E402
import redis  # noqa: E402

from core.index.ranking import rrf  # noqa: E402
from core.runtime import Runtime  # noqa: E402
from core.settings import Settings  # noqa: E402
from eval.beir import BeirDataset, load_beir  # noqa: E402
from eval.metrics import mean, ndcg_at, recall_at  # noqa: E402
from eval.workspace import EvalWorkspace  # noqa: E402
from graph.extract import RuleExtractor  # noqa: E402
from graph.leg import GraphLeg  # noqa: E402
from graph.model import TenantGraph  # noqa: E402
from graph.store import FileGraphStore, GraphStore, RedisGraphStore  # noqa: E402
from graph.updater import GraphUpdater  # noqa: E402
from ingest.bucket import LocalBucket, sha256  # noqa: E402
from ingest.chunking import Chunker, chunk_hash  # noqa: E402
from ingest.documents import DocumentBuilder, MetaLimits, PreparedDocument  # noqa: E402
from ingest.service import Ingestion  # noqa: E402
from retrieval.hybrid import HybridRetriever, RetrievalConfig  # noqa: E402

WORK = ROOT / "bench" / ".work" / "graph"
REDIS_DB = 12


def table(title: str, rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    print(f"\n{title}")
    for row in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def prepare(ws: EvalWorkspace, rt: Runtime) -> list[PreparedDocument]:
    """The documents as ingestion builds them: same keys, chunks and point ids as the index."""
    s = ws.settings
    builder = DocumentBuilder(
        Chunker.for_embedder(rt.embedder, s.ingest.chunk_size, s.ingest.chunk_overlap),
        s.default_tenant,
        MetaLimits.from_settings(s.ingest),
    )
    bucket = LocalBucket(ws.bucket_root)
    docs = []
    for obj in bucket.list():
        data = bucket.read(obj.key, s.ingest.max_file_bytes)
        docs.append(builder.build(obj, bucket.uri(obj.key), data, sha256(data), None))
    return docs


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def build(store: GraphStore, docs: list[PreparedDocument]) -> tuple[GraphUpdater, float]:
    updater = GraphUpdater(store, RuleExtractor())

    def run() -> None:
        for doc in docs:
            updater.on_indexed(doc, [doc.point_id(c) for c in doc.chunks])

    return updater, timed(run)


def edited(doc: PreparedDocument) -> PreparedDocument:
    """The document with its last sentence replaced by one naming new entities."""
    last = doc.chunks[-1]
    text = last.text.rsplit(". ", 1)[0] + ". The Zephyr Initiative confirmed BRCA1 and IL-6 data."
    chunk = replace(last, text=text, hash=chunk_hash(text))
    return replace(doc, chunks=[*doc.chunks[:-1], chunk])


def measure_build(
    ws: EvalWorkspace, docs: list[PreparedDocument], use_redis: bool
) -> FileGraphStore:
    extractor = RuleExtractor()
    chunks = [c.text for d in docs for c in d.chunks]
    extract_s = timed(lambda: [extractor.extract(t) for t in chunks])

    graph_dir = WORK / "graph-store"
    shutil.rmtree(graph_dir, ignore_errors=True)
    store = FileGraphStore(graph_dir)
    updater, build_s = build(store, docs)
    rows = [
        ("pass", "seconds", "docs/s", "chunks/s"),
        ("extractor alone (peer)", f"{extract_s:.2f}", *_rates(extract_s, docs, chunks)),
        ("file store build", f"{build_s:.2f}", *_rates(build_s, docs, chunks)),
    ]
    if use_redis:
        client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
        prefix = f"bench-graph-{uuid4().hex}"
        try:
            _, redis_s = build(RedisGraphStore(client, prefix=prefix), docs)
            rows.append(("redis store build", f"{redis_s:.2f}", *_rates(redis_s, docs, chunks)))
        finally:
            for key in client.scan_iter(f"{prefix}:*"):
                client.delete(key)
    table(f"build: {len(docs)} documents, {len(chunks)} chunks", rows)

    with store.read(ws.scope) as graph:
        g = graph.g
        degrees = sorted((len(graph.neighbour_weights(k)) for k in g), reverse=True)
        size = [
            ("nodes", f"{g.number_of_nodes()}"),
            ("edges", f"{g.number_of_edges()}"),
            ("median / max degree", f"{statistics.median(degrees):.0f} / {degrees[0]}"),
            ("entities per chunk", f"{_entities_per_chunk(graph):.1f}"),
            ("files on disk", f"{_disk_mb(graph_dir):.1f} MB"),
        ]

    def load() -> None:
        with FileGraphStore(graph_dir).read(ws.scope):
            pass

    load_s = timed(load)
    tracemalloc.start()
    with FileGraphStore(graph_dir).read(ws.scope):
        held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    size += [
        ("lazy load from files", f"{load_s:.2f} s"),
        ("memory held (tracemalloc)", f"{held / 2**20:.0f} MiB"),
        ("peak while loading", f"{peak / 2**20:.0f} MiB"),
    ]
    table("graph", size)
    measure_update(store, updater, docs, build_s)
    return store


def measure_update(
    store: FileGraphStore, updater: GraphUpdater, docs: list[PreparedDocument], build_s: float
) -> None:
    doc = max(docs, key=lambda d: len(d.chunks))  # the worst case: the most chunks
    new = edited(doc)
    per_doc = build_s / len(docs)
    extracted = updater.chunks_extracted
    update_s = timed(lambda: updater.on_indexed(new, [new.point_id(c) for c in new.chunks]))
    reextracted = updater.chunks_extracted - extracted
    delete_s = timed(lambda: updater.on_deleted(new.scope, new.doc_id))
    restore_s = timed(lambda: updater.on_indexed(doc, [doc.point_id(c) for c in doc.chunks]))
    with store.read(doc.scope) as graph:
        exact = nx.utils.graphs_equal(graph.g, TenantGraph.from_documents(graph.docs.items()).g)
    rows = [
        ("operation", "ms", "/ full build", "/ mean doc in build"),
        ("full build", f"{build_s * 1000:.0f}", "1", f"{len(docs)}"),
        *[
            (name, f"{s * 1000:.2f}", f"{s / build_s:.2e}", f"{s / per_doc:.1f}")
            for name, s in (
                (f"edit 1 of {len(doc.chunks)} chunks", update_s),
                ("delete the document", delete_s),
                ("add it back", restore_s),
            )
        ],
    ]
    table(
        f"update: {doc.doc_id} ({len(doc.chunks)} chunks; {reextracted} re-extracted); "
        f"graph equals a rebuild afterwards: {exact}",
        rows,
    )


def measure_quality(
    ws: EvalWorkspace, rt: Runtime, data: BeirDataset, store: FileGraphStore
) -> None:
    start = time.perf_counter()
    summary = ws.ingest(Ingestion(rt, ws.bucket))  # `store` is built apart, by measure_build
    print(
        f"\ningest: {summary.added} added, {summary.unchanged} unchanged, "
        f"{summary.chunks_embedded} chunks embedded in {time.perf_counter() - start:.0f} s"
    )
    with store.read(ws.scope) as graph:
        doc_of_chunk = {cid: key for key, facts in graph.docs.items() for cid in facts}
    retriever = HybridRetriever(
        rt.index, rt.embedder, RetrievalConfig.from_settings(ws.settings.retrieval)
    )
    leg = GraphLeg(store, ws.settings.graph.max_hops, ws.settings.graph.max_chunks)
    depth = ws.settings.retrieval.candidates_per_leg

    def docs(chunk_ids: list[str]) -> list[str]:
        beir = (ws.doc_id(doc_of_chunk[c]) for c in chunk_ids)
        return list(dict.fromkeys(d for d in beir if d is not None))

    runs: dict[str, dict[str, list[str]]] = {
        n: {} for n in ("engine hybrid", "rrf dense+bm25", "rrf +graph", "rrf +graph x0.5")
    }
    fired: set[str] = set()
    leg_s = 0.0
    for qid, query in data.judged_queries.items():
        rank = {
            mode: retriever.retrieve(ws.scope, query, depth, mode=mode)
            for mode in ("dense", "bm25")
        }
        runs["engine hybrid"][qid] = docs(
            [h.id for h in retriever.retrieve(ws.scope, query, depth, mode="hybrid")]
        )
        start = time.perf_counter()
        graph_ids = leg.rank(ws.scope, query)
        leg_s += time.perf_counter() - start
        if graph_ids:
            fired.add(qid)
        found = {h.id: h for h in rt.index.retrieve(ws.scope, graph_ids)}
        graph_hits = [found[i] for i in graph_ids if i in found]
        for name, legs, weights in (
            ("rrf dense+bm25", rank, None),
            ("rrf +graph", {**rank, "graph": graph_hits}, None),
            ("rrf +graph x0.5", {**rank, "graph": graph_hits}, {"graph": 0.5}),
        ):
            fused = rrf(legs, k=ws.settings.retrieval.rrf_k, weights=weights, limit=depth)
            runs[name][qid] = docs([f.id for f in fused])

    subset = {q: data.qrels[q] for q in fired}
    rows = [("run", "NDCG@10", "recall@10", f"NDCG@10 where the leg fired ({len(fired)})")]
    for name, run in runs.items():
        rows.append(
            (
                name,
                f"{mean(ndcg_at(run, data.qrels, 10)):.4f}",
                f"{mean(recall_at(run, data.qrels, 10)):.4f}",
                f"{mean(ndcg_at(run, subset, 10)):.4f}",
            )
        )
    n = len(data.judged_queries)
    table(
        f"quality: {n} judged test queries; graph leg fired on {len(fired)}, "
        f"{leg_s / n * 1000:.1f} ms per query",
        rows,
    )


def _rates(seconds: float, docs: list, chunks: list) -> tuple[str, str]:
    return f"{len(docs) / seconds:.0f}", f"{len(chunks) / seconds:.0f}"


def _entities_per_chunk(graph: TenantGraph) -> float:
    counts = [len(x.entities) for facts in graph.docs.values() for x in facts.values()]
    return sum(counts) / len(counts)


def _disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*.json")) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--skip-quality", action="store_true", help="no embedding, no NDCG")
    parser.add_argument("--redis", action="store_true", help="also build into Redis (db 12)")
    args = parser.parse_args()

    data = load_beir(args.dataset)
    ws = EvalWorkspace.for_dataset(Settings(data_dir=WORK / "data"), data.name)
    ws.write_corpus(data.corpus)
    with ws.open_runtime() as rt:
        docs = prepare(ws, rt)
        store = measure_build(ws, docs, args.redis)
        if not args.skip_quality:
            measure_quality(ws, rt, data, store)


if __name__ == "__main__":
    main()
