"""PyTorch against ONNX Runtime on the same SciFact chunks and queries, in one run.

    python bench/inference.py [--docs 400] [--queries 100] [--rounds 3] [--int8] [--no-ndcg]

For each backend (torch, the reference; onnx, the default; onnx int8 with --int8):
  documents   chunks/s embedding the chunks of the first --docs SciFact documents, in calls of
              160 chunks as ingestion makes them; also chunks per CPU second of the process, which
              a machine loaded by other work disturbs less than wall time
  query       p50/p95 ms of one query embedding, over --queries SciFact test queries
  rerank-20   p50/p95 ms of the cross-encoder scoring 20 chunks for one query
  NDCG@10     hybrid retrieval over the whole SciFact corpus ingested with that backend's vectors
and each figure's ratio to torch. The backends take turns round by round, so a machine loaded by
other work slows them alike. The reranker is RAG_RERANKER_MODEL when it is installed locally,
else a cross-encoder built from the shipped MiniLM (same architecture as the MiniLM-L6
cross-encoders, untrained head: right for cost, not for quality).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from core.embedding import Embedder  # noqa: E402
from core.onnx_models import ExportError, InferenceOptions, resolve_model_folder  # noqa: E402
from core.settings import Settings  # noqa: E402
from eval.beir import BeirDataset, load_beir  # noqa: E402
from eval.runner import run_system, service_systems  # noqa: E402
from eval.workspace import EvalWorkspace  # noqa: E402
from ingest.chunking import Chunker  # noqa: E402
from retrieval.rerank import CrossEncoderReranker  # noqa: E402
from serving.platform import Platform  # noqa: E402
from tests.support.models import build_untrained_cross_encoder  # noqa: E402

WORK = ROOT / "bench" / ".work" / "inference"
CALL = 160  # chunks per embed_documents call, as ingestion batches them


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def reranker_folder(settings: Settings) -> str:
    try:
        return str(resolve_model_folder(settings.models.reranker_model))
    except ExportError:
        folder = WORK / "cross-encoder"
        if not (folder / "config.json").exists():
            build_untrained_cross_encoder(settings.models.embedding_model, folder)
        return str(folder)


def judged_subset(dataset: BeirDataset, distractors: int) -> BeirDataset:
    """The documents judged for the test queries, and the first `distractors` of the others:
    a smaller corpus for a loaded machine (absolute NDCG is higher than on the whole corpus;
    the difference between backends is what this bench reports)."""
    judged = {d for rels in dataset.qrels.values() for d in rels}
    others = [d for d in dataset.corpus if d not in judged][:distractors]
    keep = judged | set(others)
    corpus = {d: doc for d, doc in dataset.corpus.items() if d in keep}
    return dataclasses.replace(dataset, corpus=corpus, name=f"{dataset.name}-{len(corpus)}")


def hybrid_ndcg(settings: Settings, dataset, backend: str, embedder: Embedder) -> float:
    """SciFact NDCG@10 of hybrid, the corpus ingested with this backend's own vectors."""
    workspace = EvalWorkspace.for_dataset(
        settings.updated(data_dir=WORK / f"ndcg-{backend}"), dataset.name
    )
    workspace.write_corpus(dataset.corpus)
    queries = dataset.judged_queries
    with Platform(workspace.open_runtime(embedder)) as platform:
        started = time.perf_counter()
        summary = workspace.ingest(platform.ingestion_of(workspace.bucket))
        print(
            f"  {backend}: ingested ({summary.chunks_embedded} chunks embedded, "
            f"{time.perf_counter() - started:.0f}s)",
            flush=True,
        )
        service = platform.search
        hybrid = service_systems(service, workspace.scope, ["hybrid"], 100)["hybrid"]
        run = run_system("hybrid", hybrid, queries, dataset.qrels, workspace.doc_id)
    return run.means["ndcg@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=Path("/work/shared/data/scifact"))
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--int8", action="store_true", help="also ONNX with int8 weights")
    parser.add_argument("--no-ndcg", action="store_true", help="skip the SciFact NDCG@10 runs")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; 0: NDCG only")
    parser.add_argument("--only", nargs="*", help="NDCG of these backends (and torch's timings)")
    parser.add_argument(
        "--ndcg-distractors",
        type=int,
        help="NDCG over the judged documents and this many others (default: the whole corpus)",
    )
    args = parser.parse_args()

    settings = Settings(data_dir=WORK)
    dataset = load_beir(args.dataset)
    backends = {"torch": ("torch", None), "onnx": ("onnx", None)}
    if args.int8:
        backends["onnx-int8"] = ("onnx", "int8")
    if args.only:  # e.g. NDCG of some backends in a second process; torch is always loaded
        backends = {n: b for n, b in backends.items() if n == "torch" or n in args.only}
    cross_encoder = reranker_folder(settings)
    embedders: dict[str, Embedder] = {}
    rerankers: dict[str, CrossEncoderReranker] = {}
    for name, (backend, quantize) in backends.items():
        options = InferenceOptions(
            backend, settings.models.inference_threads, quantize, settings.models.onnx_export_dir
        )
        embedders[name] = Embedder(
            settings.models.embedding_model, settings.models.embedding_batch_size, inference=options
        )
        rerankers[name] = CrossEncoderReranker(
            cross_encoder,
            settings.models.rerank_batch_size,
            settings.models.rerank_max_tokens,
            options,
        )
        assert embedders[name].backend == backend, embedders[name].fallback_reason

    reference = embedders["torch"]
    chunker = Chunker.for_embedder(reference, None, settings.ingest.chunk_overlap)
    docs = list(dataset.corpus.values())[: args.docs]
    chunks = [c.text for d in docs for c in chunker.split(f"{d.title}\n\n{d.text}")]
    queries = list(dataset.judged_queries.values())[: args.queries]
    rng = np.random.default_rng(0)
    candidates = [[chunks[i] for i in rng.choice(len(chunks), 20, replace=False)] for _ in queries]
    models = settings.models
    print(
        f"{len(docs)} SciFact documents -> {len(chunks)} chunks, {len(queries)} queries; "
        f"threads {models.inference_threads}, batch {models.embedding_batch_size}; "
        f"reranker {Path(cross_encoder).name}",
        flush=True,
    )

    doc_seconds: dict[str, list[float]] = {n: [] for n in backends}
    doc_cpu: dict[str, list[float]] = {n: [] for n in backends}  # the process's CPU seconds
    query_s: dict[str, list[float]] = {n: [] for n in backends}
    rerank_s: dict[str, list[float]] = {n: [] for n in backends}
    vectors: dict[str, np.ndarray] = {}
    for name in backends if args.rounds else ():  # warm-up: first calls allocate
        embedders[name].embed_documents(chunks[:CALL])
        embedders[name].embed_query(queries[0])
        rerankers[name].score(queries[0], candidates[0])
    for _ in range(args.rounds):
        for name in backends:
            started, cpu = time.perf_counter(), time.process_time()
            out = [
                embedders[name].embed_documents(chunks[i : i + CALL])
                for i in range(0, len(chunks), CALL)
            ]
            doc_seconds[name].append(time.perf_counter() - started)
            doc_cpu[name].append(time.process_time() - cpu)
            vectors[name] = np.concatenate(out)
            for query in queries:
                started = time.perf_counter()
                embedders[name].embed_query(query)
                query_s[name].append(time.perf_counter() - started)
            for query, texts in zip(queries[: len(queries) // 2], candidates, strict=False):
                started = time.perf_counter()
                rerankers[name].score(query, texts)
                rerank_s[name].append(time.perf_counter() - started)

    rows: dict[str, dict[str, float]] = {name: {} for name in backends}
    for name in backends if args.rounds else ():
        cosine = (vectors[name] * vectors["torch"]).sum(axis=1)
        rows[name] = {
            "chunks/s": len(chunks) / statistics.median(doc_seconds[name]),
            "chunks/cpu-s": len(chunks) / statistics.median(doc_cpu[name]),
            "query p50": percentile(query_s[name], 50),
            "query p95": percentile(query_s[name], 95),
            "rerank p50": percentile(rerank_s[name], 50),
            "rerank p95": percentile(rerank_s[name], 95),
            "min cos": float(cosine.min()),
            "mean cos": float(cosine.mean()),
        }
    if not args.no_ndcg:
        corpus = dataset
        if args.ndcg_distractors is not None:
            corpus = judged_subset(dataset, args.ndcg_distractors)
        print(f"SciFact NDCG@10 (hybrid), {len(corpus.corpus)} documents:", flush=True)
        for name in backends:
            if args.only and name not in args.only:
                continue
            rows[name]["NDCG@10"] = hybrid_ndcg(settings, corpus, name, embedders[name])
            print(f"  {name}: NDCG@10 {rows[name]['NDCG@10']:.4f}", flush=True)

    columns = list(dict.fromkeys(c for row in rows.values() for c in row))
    print(f"\n{'backend':<10}" + "".join(f"{c:>12}" for c in columns))
    for name, row in rows.items():
        print(f"{name:<10}" + "".join(f"{row.get(c, float('nan')):>12.4f}" for c in columns))
    print("\nratios to torch (throughput: higher is better; latency: lower is better)")
    for name, row in rows.items():
        if name == "torch":
            continue
        t = rows["torch"]
        ratios = {}
        if "chunks/s" in row:
            ratios = {
                "documents": row["chunks/s"] / t["chunks/s"],
                "documents per CPU second": row["chunks/cpu-s"] / t["chunks/cpu-s"],
                "query p50": row["query p50"] / t["query p50"],
                "query p95": row["query p95"] / t["query p95"],
                "rerank p50": row["rerank p50"] / t["rerank p50"],
                "rerank p95": row["rerank p95"] / t["rerank p95"],
            }
        if "NDCG@10" in row and "NDCG@10" in t:
            ratios["NDCG@10 delta"] = row["NDCG@10"] - t["NDCG@10"]
        print(f"{name:<10} " + "  ".join(f"{k} {v:.3f}" for k, v in ratios.items()))
    (WORK / "last.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
