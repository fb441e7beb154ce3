"""Run named retrieval systems over BEIR queries and score them with the ranking metrics.

A system is any callable from a query to ranked results: chunks (`Hit`s or `RankedChunk`s),
mapped back to BEIR document ids (each document at the rank of its first chunk), or BEIR document
ids directly. The platform's modes are the served `SearchService`'s, which the caller passes in;
a peer plugs in through a `SystemFactory` without this module importing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from core.runtime import Runtime
from core.types import Hit, TenantScope
from eval.beir import BeirDataset
from eval.metrics import MAX_CUTOFF, mean, score_run
from eval.workspace import EvalWorkspace
from retrieval.search import RankedChunk, SearchRequest, SearchService

System = Callable[[str], Sequence[Hit] | Sequence[RankedChunk] | Sequence[str]]
Progress = Callable[[str], None]  # one line of progress, e.g. printed when not a terminal
_PROGRESS_EVERY = 100
# Builds extra systems once the evaluation's runtime (model, index) and tenant exist.
SystemFactory = Callable[[Runtime, TenantScope], Mapping[str, System]]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")  # the default; `graph` is asked for


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
    results: Sequence[Hit] | Sequence[RankedChunk] | Sequence[str],
    doc_id_of: Callable[[str], str | None],
) -> list[Retrieved]:
    """Chunk hits to distinct documents, each kept at the rank of its first chunk."""
    docs: dict[str, Retrieved] = {}
    for r in results:
        if isinstance(r, Hit | RankedChunk):
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
    progress: Progress | None = None,
) -> SystemRun:
    started = time.perf_counter()
    ranked = {}
    for n, (qid, text) in enumerate(queries.items(), start=1):
        ranked[qid] = to_documents(system(text), doc_id_of)
        if progress is not None and (n % _PROGRESS_EVERY == 0 or n == len(queries)):
            progress(f"{name}: {n}/{len(queries)} queries")
    seconds = time.perf_counter() - started
    run = {qid: [d.doc_id for d in docs] for qid, docs in ranked.items()}
    judged = {qid: qrels[qid] for qid in queries if qid in qrels}
    return SystemRun(name, ranked, score_run(run, judged), seconds)


def service_systems(
    service: SearchService, scope: TenantScope, modes: Sequence[str], depth: int = MAX_CUTOFF
) -> dict[str, System]:
    """Each mode as a system: the served `SearchService`, `depth` chunks deep, as /v1/search."""

    def system(mode: str) -> System:
        def search(query: str) -> Sequence[RankedChunk]:
            req = SearchRequest(query, top_k=depth, mode=mode)  # type: ignore[arg-type]
            return service.search(scope, req).chunks

        return search

    return {mode: system(mode) for mode in modes}


def evaluate_systems(
    workspace: EvalWorkspace,
    runtime: Runtime,
    service: SearchService,
    modes: Sequence[str],
    dataset: BeirDataset,
    queries: Mapping[str, str],
    extra: SystemFactory | None = None,
    progress: Progress | None = None,
) -> dict[str, SystemRun]:
    """Every mode, then every extra system, over the same queries on the ingested corpus."""
    systems = service_systems(service, workspace.scope, modes)
    if extra is not None:
        systems.update(extra(runtime, workspace.scope))
    return {
        name: run_system(name, system, queries, dataset.qrels, workspace.doc_id, progress)
        for name, system in systems.items()
    }
