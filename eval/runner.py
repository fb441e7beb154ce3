"""Run named retrieval systems over BEIR queries and score them with the ranking metrics.

A system is any callable from a query to ranked results: chunk `Hit`s, mapped back to BEIR
document ids (each document at the rank of its first chunk), or BEIR document ids directly. The
retriever's modes are built here; a reranker or another leg plugs in through a `SystemFactory`
without this module importing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from core.embedding import Embedder
from core.runtime import Runtime
from core.types import Hit, TenantScope
from eval.beir import BeirDataset
from eval.metrics import MAX_CUTOFF, mean, score_run
from eval.workspace import EvalWorkspace
from retrieval.hybrid import HybridRetriever, Mode, RetrievalConfig

System = Callable[[str], Sequence[Hit] | Sequence[str]]
# Builds extra systems once the evaluation's runtime (model, index) and tenant exist.
SystemFactory = Callable[[Runtime, TenantScope], Mapping[str, System]]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "bm25")


@dataclass(frozen=True)
class Retrieved:
    """A ranked result: a BEIR document, with the text of the chunk that stood for it."""

    doc_id: str  # the BEIR id
    text: str = ""  # the text of its best-ranked chunk; "" when the system returned ids
    chunk_id: str = ""  # that chunk's point id, the id the answer prompt cites


@dataclass
class SystemRun:
    name: str
    ranked: dict[str, list[Retrieved]]  # query id -> documents, best first
    per_query: dict[str, dict[str, float]]  # metric -> query id -> value
    seconds: float
    means: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.means = {metric: mean(values) for metric, values in self.per_query.items()}


def to_documents(
    results: Sequence[Hit] | Sequence[str], doc_id_of: Callable[[str], str | None]
) -> list[Retrieved]:
    """Chunk hits to distinct documents, each kept at the rank of its first chunk."""
    docs: dict[str, Retrieved] = {}
    for r in results:
        if isinstance(r, Hit):
            doc_id = doc_id_of(str(r.payload.get("doc_id", "")))
            doc = Retrieved(doc_id, str(r.payload.get("text", ""))) if doc_id else None
        else:
            doc = Retrieved(r)
        if doc is not None and doc.doc_id not in docs:
            docs[doc.doc_id] = doc
    return list(docs.values())


def run_system(
    name: str,
    system: System,
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    doc_id_of: Callable[[str], str | None],
) -> SystemRun:
    started = time.perf_counter()
    ranked = {qid: to_documents(system(text), doc_id_of) for qid, text in queries.items()}
    seconds = time.perf_counter() - started
    run = {qid: [d.doc_id for d in docs] for qid, docs in ranked.items()}
    judged = {qid: qrels[qid] for qid in queries if qid in qrels}
    return SystemRun(name, ranked, score_run(run, judged), seconds)


class _QueryVectors:
    """Every query of the run embedded once, in batches, up front.

    The dense and hybrid modes and RAGAS's context retrieval all ask for the same vectors, and
    one batched encode is far cheaper than a model call per query. The vectors equal
    `embed_query`'s: the same query prefix, model and normalisation.
    """

    def __init__(self, embedder: Embedder, query_prefix: str, queries: Iterable[str]) -> None:
        self._embedder = embedder
        texts = list(dict.fromkeys(queries))
        vectors = embedder.embed_documents([query_prefix + t for t in texts])
        self._vectors = dict(zip(texts, vectors, strict=True))

    def embed_query(self, text: str) -> np.ndarray:
        if text not in self._vectors:
            self._vectors[text] = self._embedder.embed_query(text)
        return self._vectors[text]


def eval_retriever(runtime: Runtime, queries: Iterable[str]) -> HybridRetriever:
    """The retriever with the served configuration, the run's query vectors computed up front."""
    s = runtime.settings
    vectors = _QueryVectors(runtime.embedder, s.query_prefix, queries)
    # HybridRetriever only ever calls embed_query on its embedder.
    embedder = cast(Embedder, vectors)
    return HybridRetriever(runtime.index, embedder, RetrievalConfig(s.candidates_per_leg, s.rrf_k))


def mode_systems(
    retriever: HybridRetriever, scope: TenantScope, depth: int = MAX_CUTOFF
) -> dict[str, System]:
    """The retriever's modes, `depth` chunks deep."""

    def system(mode: Mode) -> System:
        return lambda query: retriever.retrieve(scope, query, depth, mode)

    return {mode: system(mode) for mode in MODES}


def evaluate_systems(
    workspace: EvalWorkspace,
    runtime: Runtime,
    retriever: HybridRetriever,
    dataset: BeirDataset,
    queries: Mapping[str, str],
    extra: SystemFactory | None = None,
) -> dict[str, SystemRun]:
    """Every mode, then every extra system, over the same queries on the ingested corpus."""
    systems = mode_systems(retriever, workspace.scope)
    if extra is not None:
        systems.update(extra(runtime, workspace.scope))
    return {
        name: run_system(name, system, queries, dataset.qrels, workspace.doc_id)
        for name, system in systems.items()
    }
