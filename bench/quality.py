"""Retrieval quality on a BEIR dataset: our modes beside the peers, on the same chunks and model.

    python bench/quality.py [--dataset ../shared/data/scifact] [--no-llamaindex]

Ingests the corpus through the real pipeline into a scratch workspace (incrementally: a second
run re-embeds nothing), then scores every system on the test queries with NDCG@10, Recall@10 and
MRR@10 (BEIR's definitions, `eval/metrics.py`):

  dense, bm25, hybrid      this platform (the served `SearchService`, as `rag eval` runs it;
                           BM25 and RRF run inside Qdrant)
  rank-bm25 BM25Okapi      the reference BM25, over the same chunk texts
  llamaindex fusion        LlamaIndex `QueryFusionRetriever` (BM25Retriever + vector retriever,
                           reciprocal rerank) over the same chunks and vectors
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from core.settings import Settings  # noqa: E402
from eval.beir import load_beir  # noqa: E402
from eval.metrics import MAX_CUTOFF  # noqa: E402
from eval.runner import MODES, SystemRun, run_system, service_systems  # noqa: E402
from eval.workspace import EvalWorkspace  # noqa: E402
from serving.platform import Platform  # noqa: E402

WORK = ROOT / "bench" / ".work" / "quality"
# As deep as `rag eval` asks (its deepest cutoff, Recall@50): the depth is a search setting (a
# request of top_k above the candidates per leg fetches more per leg, which moves the fused order),
# so the two report the same figures only at the same depth.
DEPTH = MAX_CUTOFF
_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def rank_bm25_system(texts: list[str], doc_ids: list[str]):
    from rank_bm25 import BM25Okapi

    bm25 = BM25Okapi([tokenize(t) for t in texts])

    def system(query: str) -> list[str]:
        scores = bm25.get_scores(tokenize(query))
        top = np.argsort(-scores)[:DEPTH]
        return [doc_ids[i] for i in top if scores[i] > 0]

    return system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--no-llamaindex", action="store_true", help="skip the LlamaIndex peer")
    args = parser.parse_args()

    dataset = load_beir(args.dataset)
    queries = dataset.judged_queries
    workspace = EvalWorkspace.for_dataset(Settings(data_dir=WORK), dataset.name)
    workspace.write_corpus(dataset.corpus)
    runs: list[SystemRun] = []
    with Platform(workspace.open_runtime()) as platform:
        rt = platform.runtime
        start = time.perf_counter()
        summary = workspace.ingest(platform.ingestion_of(workspace.bucket))
        print(
            f"ingest: +{summary.added} ~{summary.modified} ={summary.unchanged} "
            f"({summary.chunks_embedded} chunks embedded, {time.perf_counter() - start:.0f}s)"
        )
        service = platform.search
        for name, system in service_systems(service, workspace.scope, MODES, DEPTH).items():
            runs.append(run_system(name, system, queries, dataset.qrels, workspace.doc_id))

        chunks = list(rt.index.scroll(workspace.scope, ("doc_id", "text")))
        texts = [p["text"] for _, p in chunks]
        beir_ids = [workspace.doc_id(p["doc_id"]) or "" for _, p in chunks]
        peer = rank_bm25_system(texts, beir_ids)
        runs.append(
            run_system("rank-bm25 BM25Okapi", peer, queries, dataset.qrels, workspace.doc_id)
        )

        if not args.no_llamaindex:
            from latency import chunk_vectors, peer_retriever

            vectors = chunk_vectors(rt, workspace.scope, synthetic=False)
            fusion = peer_retriever(rt, workspace.scope, rt.embedder, vectors)

            def llamaindex(query: str) -> list[str]:
                nodes = fusion.retrieve(query)
                return [workspace.doc_id(n.node.metadata["doc_id"]) or "" for n in nodes]

            runs.append(
                run_system(
                    "llamaindex fusion", llamaindex, queries, dataset.qrels, workspace.doc_id
                )
            )

    print(f"\n{dataset.name}: {len(dataset.corpus)} docs, {len(queries)} test queries")
    print(f"{'system':<22} {'NDCG@10':>8} {'Recall@10':>10} {'MRR@10':>8} {'queries/s':>10}")
    for run in runs:
        m = run.means
        qps = len(queries) / run.seconds if run.seconds else float("inf")
        print(
            f"{run.name:<22} {m['ndcg@10']:>8.4f} {m['recall@10']:>10.4f} "
            f"{m['mrr@10']:>8.4f} {qps:>10.1f}"
        )


if __name__ == "__main__":
    main()
