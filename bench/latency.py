"""Search latency over HTTP on loopback, per stage and end to end, beside LlamaIndex's retriever.

    python bench/latency.py [--quick] [--requests N] [--synthetic N] [--dataset PATH]

Two corpora, each served by the real app (uvicorn in a thread on 127.0.0.1, an httpx client):
  - SciFact: the corpus ingested through the real pipeline (bucket -> chunking -> embedding) into
    the bench's own workspace under bench/.work/latency (embedded once, then found unchanged);
  - synthetic: N chunks for the tenant searched (default 100k) plus N/5 for another tenant,
    random unit vectors and text drawn from SciFact's vocabulary, written straight to a fresh
    embedded shard (nothing embedded).
Each corpus's vector index is built first (`optimize`, as `rag ingest` and the workers do). For
each: hybrid search without a filter, with per-leg ranks (`explain`), with a metadata filter
(size below the median, about half the chunks), and with the fused top 20 reranked by a MiniLM-L6
cross-encoder built locally from the shipped weights (an untrained head: the cost of a real
MiniLM reranker, not its quality).
Every query carries the tenant filter inside the engine query; there is no unscoped query to
compare against. Stages are the server's own timings (query embedding, engine, rerank, server
total); "http" is what the client waited.

The peer, in the same process: LlamaIndex `QueryFusionRetriever` (reciprocal rerank,
num_queries=1) over a `BM25Retriever` and a vector index of the same chunks, vectors and query
model, 50 candidates per retriever like ours, top 10. Its latency is measured in process (no
HTTP), so the ratio favours it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from api.app import create_app  # noqa: E402
from api.auth import create_key  # noqa: E402
from core.embedding import Embedder  # noqa: E402
from core.onnx_models import InferenceOptions  # noqa: E402
from core.runtime import Runtime  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import IndexedChunk, TenantScope  # noqa: E402
from eval.beir import load_beir  # noqa: E402
from eval.workspace import EvalWorkspace  # noqa: E402
from ingest.service import Ingestion  # noqa: E402
from serving.platform import Platform  # noqa: E402
from tests.support.models import build_untrained_cross_encoder  # noqa: E402
from tests.support.server import serving as serving_app  # noqa: E402

WORK = ROOT / "bench" / ".work" / "latency"
TOP_K = 10
WARM_UP = 3
STAGES = ("embed", "engine", "rerank", "total", "http")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --------------------------------------------------------------------------- corpora


def scifact_runtime(dataset: Path, docs: int | None, embedder: Embedder, ce: Path) -> Runtime:
    data = load_beir(dataset)
    corpus = dict(list(data.corpus.items())[:docs]) if docs else data.corpus
    base = Settings(data_dir=WORK / ("scifact" if docs is None else f"scifact-{docs}"))
    ws = EvalWorkspace.for_dataset(base, "scifact")
    ws = EvalWorkspace(ws.root, TenantScope("bench"), _bench_settings(ws.settings, ce))
    ws.write_corpus(corpus)
    rt = ws.open_runtime(embedder)
    summary = ws.ingest(Ingestion(rt, ws.bucket))  # no graph: the bench serves no graph leg
    print(f"scifact: {len(corpus)} documents, {summary.chunks_embedded} chunks embedded this run")
    return rt


def scifact_queries(dataset: Path) -> list[str]:
    return list(load_beir(dataset).judged_queries.values())


def vocabulary(dataset: Path, size: int = 20_000) -> tuple[list[str], list[float]]:
    counts: Counter[str] = Counter()
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            counts.update(re.findall(r"[a-z]{3,}", json.loads(line)["text"].lower()))
    words, freq = zip(*counts.most_common(size), strict=True)
    return list(words), [float(c) for c in freq]


def synthetic_id(i: int) -> str:
    return f"00000000-0000-4000-8000-{i:012d}"


def synthetic_vectors(folder: Path, total: int, dim: int) -> np.ndarray:
    """Seeded random unit vectors, saved beside the shard so the peer gets the same ones."""
    path = folder / "vectors.npy"
    if path.exists():
        return np.load(path)
    vectors = np.random.default_rng(11).standard_normal((total, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    folder.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors)
    return vectors


def synthetic_runtime(
    n: int, words: list[str], freq: list[float], embedder: Embedder, ce: Path
) -> Runtime:
    """n chunks for tenant `bench` and n/5 for tenant `other`, kept between runs."""
    settings = _bench_settings(Settings(data_dir=WORK / f"synthetic-{n}"), ce)
    total = n + n // 5
    vectors = synthetic_vectors(settings.data_dir, total, embedder.dim)
    rt = Runtime(settings, embedder)
    if rt.index.count() == total:
        return rt
    rnd = random.Random(11)
    types = ["pdf", "md", "txt", "html", "docx"]
    start = time.perf_counter()
    for first in range(0, total, 2_000):
        batch = []
        for i in range(first, min(first + 2_000, total)):
            doc = f"synthetic/{i // 8}.txt"
            payload = {
                "tenant_id": "bench" if i < n else "other",
                "doc_id": doc,
                "source": f"file:///{doc}",
                "title": "",
                "doc_type": types[i % len(types)],
                "mime_type": "text/plain",
                "size": rnd.randint(1_000, 100_000),
                "modified_at": (datetime(2020, 1, 1, tzinfo=UTC) + timedelta(hours=i)).isoformat(),
                "chunk_hash": str(i),
                "ordinal": i % 8,
                "text": " ".join(rnd.choices(words, weights=freq, k=rnd.randint(60, 120))),
                "meta": {},
            }
            batch.append(IndexedChunk(synthetic_id(i), vectors[i], payload))
        rt.index.upsert(batch)
    print(f"synthetic: wrote {total} chunks in {time.perf_counter() - start:.0f}s")
    return rt


def _bench_settings(settings: Settings, ce: Path) -> Settings:
    return settings.updated(reranker_model=str(ce), index_mode="edge")


# --------------------------------------------------------------------------- our API over HTTP


@contextmanager
def serving(rt: Runtime) -> Iterator[str]:
    """The real app under uvicorn in a thread on loopback; stops (and closes `rt`) on exit."""
    with serving_app(create_app(Platform(rt, legs=())), rt.settings.api) as url:
        yield url


def measure_http(
    client: httpx.Client, queries: list[str], n: int, extra: dict[str, object]
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {s: [] for s in STAGES}
    for i in range(n + WARM_UP):
        body = {"query": queries[i % len(queries)], "top_k": TOP_K, **extra}
        start = time.perf_counter()
        r = client.post("/v1/search", json=body)
        waited = (time.perf_counter() - start) * 1000
        r.raise_for_status()
        if i < WARM_UP:
            continue
        for stage, ms in r.json()["timings_ms"].items():
            if stage in out:
                out[stage].append(ms)
        out["http"].append(waited)
    return out


def median_size(rt: Runtime, scope: TenantScope) -> int:
    sizes = [p["size"] for _, p in rt.index.scroll(scope, ("size",))]
    return int(statistics.median(sizes))


# --------------------------------------------------------------------------- the LlamaIndex peer


def peer_retriever(rt: Runtime, scope: TenantScope, embedder: Embedder, vectors: dict) -> object:
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.llms import MockLLM
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever
    from pydantic import PrivateAttr

    class SameModel(BaseEmbedding):
        """Our query model, so both sides embed queries with the same weights."""

        _model: Embedder = PrivateAttr()

        def __init__(self, model: Embedder) -> None:
            super().__init__(model_name=model.model_name)
            self._model = model

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._model.embed_query(query).tolist()

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._model.embed_documents([text])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    nodes = [
        TextNode(
            id_=pid,
            text=p["text"],
            embedding=vectors[pid].tolist(),
            metadata={"doc_id": p["doc_id"]},  # for callers mapping hits to documents
            excluded_embed_metadata_keys=["doc_id"],
            excluded_llm_metadata_keys=["doc_id"],
        )
        for pid, p in rt.index.scroll(scope, ("text", "doc_id"))
    ]
    vector = VectorStoreIndex(nodes, embed_model=SameModel(embedder)).as_retriever(
        similarity_top_k=50
    )
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=50)
    return QueryFusionRetriever(
        [vector, bm25],
        llm=MockLLM(),
        mode="reciprocal_rerank",
        similarity_top_k=TOP_K,
        num_queries=1,
        use_async=False,
    )


def chunk_vectors(rt: Runtime, scope: TenantScope, synthetic: bool) -> dict[str, np.ndarray]:
    """The vectors the index holds, recovered without embedding anything again."""
    hits = list(rt.index.scroll(scope, ("text", "chunk_hash")))
    if synthetic:
        vectors = np.load(rt.settings.data_dir / "vectors.npy", mmap_mode="r")
        return {pid: vectors[int(p["chunk_hash"])] for pid, p in hits}
    found, _ = rt.cached_embedder.embed_chunks(
        [p["chunk_hash"] for _, p in hits], [p["text"] for _, p in hits]
    )
    return {pid: v for (pid, _), v in zip(hits, found, strict=True)}


def measure_peer(retriever: object, queries: list[str], n: int) -> list[float]:
    out = []
    for i in range(n + WARM_UP):
        start = time.perf_counter()
        retriever.retrieve(queries[i % len(queries)])  # type: ignore[attr-defined]
        if i >= WARM_UP:
            out.append((time.perf_counter() - start) * 1000)
    return out


# --------------------------------------------------------------------------- one corpus, end to end


def run_corpus(
    name: str,
    rt: Runtime,
    queries: list[str],
    requests: int,
    embedder: Embedder,
    synthetic: bool,
) -> list[tuple[str, ...]]:
    scope = TenantScope("bench")
    start = time.perf_counter()
    if rt.index.optimize():  # what `rag ingest` and the workers' timer do
        print(f"{name}: vector index built in {time.perf_counter() - start:.0f}s")
    chunks = rt.index.count(scope)
    cut = median_size(rt, scope)
    vectors = chunk_vectors(rt, scope, synthetic)
    start = time.perf_counter()
    peer = peer_retriever(rt, scope, embedder, vectors)
    print(
        f"{name}: LlamaIndex peer built over {chunks} chunks in {time.perf_counter() - start:.0f}s"
    )
    peer_ms = measure_peer(peer, queries, requests)
    del peer, vectors
    key = create_key(rt.settings, scope.tenant_id, "reader")
    # A cross-encoder reads 20 full chunks per query: seconds on a small CPU, so fewer requests.
    configs = {
        "hybrid": ({}, requests),
        "hybrid, explain": ({"explain": True}, requests),
        "hybrid + filter": ({"filters": [{"field": "size", "lt": cut}]}, requests),
        "hybrid + rerank 20": ({"rerank": True, "rerank_top_n": 20}, max(5, requests // 10)),
    }
    rows = []
    headers = {"X-API-Key": key}
    with serving(rt) as url, httpx.Client(base_url=url, headers=headers, timeout=300) as client:
        for label, (extra, n) in configs.items():
            stats = measure_http(client, queries, n, extra)
            cells = [
                f"{pct(stats[s], 50):.1f} / {pct(stats[s], 95):.1f}" if stats[s] else "-"
                for s in STAGES
            ]
            ratio = statistics.median(peer_ms) / statistics.median(stats["http"])
            versus = "" if "rerank" in extra else f"{ratio:.1f}x"  # the peer does not rerank
            rows.append((name, f"{chunks:,}", f"{label} (n={n})", *cells, versus))
    peer_label = f"LlamaIndex fusion, in process (n={requests})"
    peer_cells = ("", "", "", "", f"{pct(peer_ms, 50):.1f} / {pct(peer_ms, 95):.1f}", "")
    rows.append((name, f"{chunks:,}", peer_label, *peer_cells))
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("corpus", "chunks", "config", *[f"{s} p50/p95 ms" for s in STAGES], "peer/http")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--quick", action="store_true", help="1k SciFact docs, 10k synthetic")
    parser.add_argument("--requests", type=int, default=None, help="requests per configuration")
    parser.add_argument("--synthetic", type=int, default=None, help="synthetic chunks")
    parser.add_argument("--backend", choices=["onnx", "torch"], help="default: the setting's")
    args = parser.parse_args()
    if args.backend:  # every Settings() below, the server's reranker included, reads it
        os.environ["RAG_INFERENCE_BACKEND"] = args.backend
    requests = args.requests or (30 if args.quick else 200)
    synthetic = args.synthetic or (10_000 if args.quick else 100_000)
    docs = 1_000 if args.quick else None

    settings = Settings()
    inference = InferenceOptions.from_settings(settings)
    embedder = Embedder(
        settings.models.embedding_model, settings.models.embedding_batch_size, "", inference
    )
    print(f"inference backend: {embedder.backend}")
    WORK.mkdir(parents=True, exist_ok=True)
    ce = WORK / "minilm-cross-encoder"
    if not (ce / "config.json").exists():
        build_untrained_cross_encoder(settings.models.embedding_model, ce)
    queries = scifact_queries(args.dataset)
    words, freq = vocabulary(args.dataset)
    rnd = random.Random(5)
    synthetic_queries = [" ".join(rnd.choices(words, weights=freq, k=6)) for _ in range(300)]

    rows = run_corpus(
        "scifact",
        scifact_runtime(args.dataset, docs, embedder, ce),
        queries,
        requests,
        embedder,
        synthetic=False,
    )
    rows += run_corpus(
        "synthetic",
        synthetic_runtime(synthetic, words, freq, embedder, ce),
        synthetic_queries,
        requests,
        embedder,
        synthetic=True,
    )
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\ntop_k={TOP_K}, sequential requests on 127.0.0.1, load average {load}")
    print_table(rows)


if __name__ == "__main__":
    main()
