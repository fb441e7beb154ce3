"""`rag eval` end to end: ingest the dataset, score retrieval and RAGAS, write the report, gate.

Also `run_nightly`, the body of the nightly Celery beat task.

A benchmark's reports stay files, `reports_dir/<run id>/report.{json,html}` (items cached beside
them): they are the operator's local reports on a dataset folder of this host, not state other
hosts must share, unlike a tenant's runs (`eval.evaluation_store`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from core.embedding import Embedder
from core.llm import ChatClient, judge_endpoint, llm_endpoint
from core.manifest import RunSummary
from core.model_digest import model_label
from core.onnx_models import InferenceOptions
from core.runtime import Runtime
from core.settings import Settings
from eval.beir import BeirDataset, load_beir
from eval.compare import compare, past_reports
from eval.golden import GoldenItem, golden_from_qrels, load_golden, sample
from eval.llm import Answerer, chat_answerer
from eval.report import write_report
from eval.runner import (
    MODES,
    Progress,
    Retrieved,
    SystemFactory,
    SystemRun,
    evaluate_systems,
    service_systems,
)
from eval.slices import query_tags, slice_means
from eval.workspace import EvalWorkspace
from ingest.bucket import Bucket
from ingest.service import Ingestion
from retrieval.search import SearchService

if TYPE_CHECKING:
    from ragas.llms.base import InstructorBaseRagasLLM

    from eval.ragas_scoring import ItemCache, RagasResult, RagasScorer

log = logging.getLogger(__name__)


class ServedPlatform(Protocol):
    """What the composition root (`serving.platform.Platform`) builds on the workspace's runtime:
    ingestion with the served listeners (the graph), and the served SearchService over the same
    graph. Closing it closes the runtime too."""

    @property
    def search(self) -> SearchService: ...

    def ingestion_of(self, bucket: Bucket) -> Ingestion: ...

    def close(self) -> None: ...


PlatformFactory = Callable[[Runtime], ServedPlatform]
_WORST = 10
_HISTORY = 30  # runs on the trend chart


@dataclass
class EvalLLMs:
    """Who answers and who judges; `identity` names them so a change invalidates cached items."""

    answerer: Answerer | None = None
    judge: InstructorBaseRagasLLM | None = None
    identity: str = ""


def llms_from_settings(settings: Settings) -> EvalLLMs:
    from eval.ragas_scoring import ChatJudge

    answer, judge = llm_endpoint(settings.llm), judge_endpoint(settings.eval, settings.llm)
    return EvalLLMs(
        chat_answerer(ChatClient(answer)) if answer else None,
        ChatJudge(ChatClient(judge)) if judge else None,
        f"answer={answer.model if answer else None} judge={judge.model if judge else None}",
    )


@dataclass
class EvalOutcome:
    run_dir: Path
    report: dict[str, Any]

    @property
    def regression(self) -> bool:
        return bool(self.report["regression"])


def open_run_dir(root: Path, resume: bool, **tags: str) -> Path:
    """The latest unfinished run with these `tags` when resuming, else a new timestamped folder
    whose run.json records the tags and when it started."""
    if resume:
        for path in sorted(root.glob("*/run.json"), reverse=True):
            started = json.loads(path.read_text(encoding="utf-8"))
            unfinished = not (path.parent / "report.json").exists()
            if unfinished and all(started.get(k) == v for k, v in tags.items()):
                return path.parent
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir, n = root / run_id, 0
    while run_dir.exists():
        n += 1
        run_dir = root / f"{run_id}-{n}"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(
        json.dumps({**tags, "started_at": time.time()}), encoding="utf-8"
    )
    return run_dir


def _ragas(
    settings: Settings,
    runtime: Runtime,
    service: SearchService,
    mode: str,
    workspace: EvalWorkspace,
    dataset: BeirDataset,
    items: list[GoldenItem],
    llms: EvalLLMs,
    cache_dir: Path,
) -> RagasResult:
    """RAGAS of the golden items, each answered from the contexts `mode`'s search gives it."""
    from eval.ragas_scoring import FolderItemCache, LocalRagasEmbeddings, RagasCase

    retrieve = service_systems(service, workspace.scope, [mode], settings.eval.context_k)[mode]
    cases = []
    for item in items:
        hits = retrieve(item.question)
        contexts = [
            Retrieved(workspace.doc_id(h.payload["doc_id"]) or "", h.payload["text"], h.id)
            for h in hits
        ]
        relevant = [dataset.corpus[d].content for d in item.relevant_doc_ids if d in dataset.corpus]
        cases.append(RagasCase(item, contexts, relevant))
    embeddings = None
    if llms.judge is not None:
        model = settings.eval.embedding_model
        inference = InferenceOptions.from_settings(settings)
        embedder = (
            Embedder(model, settings.models.embedding_batch_size, inference=inference)
            if model
            else runtime.embedder
        )
        embeddings = LocalRagasEmbeddings(embedder)
    return ragas_scorer(settings, FolderItemCache(cache_dir), llms, embeddings).score(cases)


def ragas_scorer(
    settings: Settings, cache: ItemCache, llms: EvalLLMs, embeddings: Any
) -> RagasScorer:
    """RAGAS with this run's answerer and judge, bounded by the evaluation settings; items are
    cached in `cache`, so a resumed run scores only what is left."""
    from eval.ragas_scoring import RagasScorer

    return RagasScorer(
        cache,
        answerer=llms.answerer,
        judge=llms.judge,
        embeddings=embeddings,
        identity=llms.identity,
        concurrency=settings.eval.concurrency,
        timeout_s=settings.eval.timeout_s,
    )


def _worst(dataset: BeirDataset, run: SystemRun) -> dict[str, Any]:
    ndcg, recall = run.per_query["ndcg@10"], run.per_query["recall@50"]
    worst = sorted(ndcg, key=lambda q: (ndcg[q], recall[q], q))[:_WORST]
    queries = []
    for qid in worst:
        grades = dataset.qrels[qid]
        queries.append(
            {
                "id": qid,
                "query": dataset.queries[qid],
                "ndcg@10": ndcg[qid],
                "recall@50": recall[qid],
                "relevant": [
                    {
                        "doc_id": d,
                        "grade": g,
                        "title": dataset.corpus[d].title if d in dataset.corpus else "",
                    }
                    for d, g in grades.items()
                    if g > 0
                ],
                "retrieved": [
                    {
                        "rank": rank,
                        "doc_id": doc.doc_id,
                        "relevant": grades.get(doc.doc_id, 0) > 0,
                        "text": doc.text,
                    }
                    for rank, doc in enumerate(run.ranked[qid][:5], start=1)
                ],
            }
        )
    return {"system": run.name, "queries": queries}


def _history_point(report: Mapping[str, Any]) -> dict[str, Any]:
    """One run on the trend chart; RAGAS metrics are named with the mode they scored, so runs of
    different modes draw different lines (reports from before the mode was recorded: hybrid's,
    unnamed)."""
    ragas = report["ragas"]
    of_mode = f" ({ragas['mode']})" if "mode" in ragas else ""
    return {
        "run_id": report["run_id"],
        "retrieval": {s: r["means"] for s, r in report["retrieval"].items()},
        "ragas": {metric + of_mode: value for metric, value in ragas["means"].items()},
    }


def _ingest(summary: RunSummary, failed_documents: dict[str, str]) -> dict[str, Any]:
    """This run's ingestion, with failures counted from the manifest, as the summary printed
    lists them: a document that failed on an earlier run and has not changed since is settled,
    and the scan counts it unchanged, but it is no more indexed than it was then."""
    settled = len(failed_documents) - summary.failed
    return {
        **asdict(summary),
        "unchanged": summary.unchanged - settled,
        "failed": len(failed_documents),
        "failed_documents": failed_documents,
    }


def _config(settings: Settings, llms: EvalLLMs) -> dict[str, Any]:
    return {
        "embedding_model": model_label(settings.models.embedding_model),
        "chunk_size": settings.ingest.chunk_size,
        "chunk_overlap": settings.ingest.chunk_overlap,
        "candidates_per_leg": settings.retrieval.candidates_per_leg,
        "rrf_k": settings.retrieval.rrf_k,
        "bm25": f"k1={settings.index.bm25_k1},b={settings.index.bm25_b}",
        "llms": llms.identity or "none",
    }


def run_eval(
    settings: Settings,
    dataset_path: Path,
    *,
    golden_path: Path | None = None,
    sample_size: int | None = None,
    ragas_sample: int | None = None,
    reports_dir: Path | None = None,
    extra_systems: SystemFactory | None = None,
    llms: EvalLLMs | None = None,
    embedder: Embedder | None = None,
    resume: bool = False,
    platform: PlatformFactory,
    modes: Sequence[str] = MODES,
    progress: Progress | None = None,
) -> EvalOutcome:
    """Evaluate one BEIR-format dataset and write reports_dir/<run id>/report.{json,html}.

    `platform` builds the served parts on the dataset's workspace runtime (the entry point passes
    `serving.platform.Platform`): the workspace is ingested through its ingestion and each of
    `modes` runs through its SearchService, as /v1/search; RAGAS answers from the contexts of
    the first of them.
    `sample_size` and `ragas_sample` default to the settings; `llms` to the configured endpoints.
    `progress` receives a line per step (documents ingested, queries run).
    """
    started = time.perf_counter()
    dataset = load_beir(dataset_path, settings.eval.split)
    items = load_golden(golden_path) if golden_path else golden_from_qrels(dataset)
    items = sample(items, ragas_sample if ragas_sample is not None else settings.eval.ragas_sample)
    llms = llms if llms is not None else llms_from_settings(settings)
    reports_dir = reports_dir or settings.eval.reports_dir
    run_dir = open_run_dir(reports_dir, resume, dataset=dataset.name)
    workspace = EvalWorkspace.for_dataset(settings, dataset.name)
    timings: dict[str, float] = {}
    with workspace.open_runtime(embedder) as runtime, closing(platform(runtime)) as served:
        t = time.perf_counter()
        workspace.write_corpus(dataset.corpus)
        ingest = workspace.ingest(served.ingestion_of(workspace.bucket), progress)
        failed_documents = workspace.failed_documents(runtime)
        timings["ingest"] = time.perf_counter() - t
        qids = sample(list(dataset.judged_queries), sample_size or settings.eval.sample)
        queries = {q: dataset.queries[q] for q in qids}
        t = time.perf_counter()
        service = served.search
        runs = evaluate_systems(
            workspace, runtime, service, modes, dataset, queries, extra_systems, progress
        )
        timings["retrieval"] = time.perf_counter() - t
        t = time.perf_counter()
        ragas_mode = modes[0]
        ragas = _ragas(
            settings,
            runtime,
            service,
            ragas_mode,
            workspace,
            dataset,
            items,
            llms,
            run_dir / "ragas-items",
        )
        timings["ragas"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    tags = {q: query_tags(dataset, q) for q in queries}
    item_tags = {
        i.id: {**(query_tags(dataset, i.id) if i.id in dataset.qrels else {}), **i.tags}
        for i in ragas.items
    }
    report: dict[str, Any] = {
        "run_id": run_dir.name,
        "created_at": datetime.now(UTC).isoformat(),
        "dataset": {
            "name": dataset.name,
            "path": str(dataset_path),
            "split": settings.eval.split,
            "docs": len(dataset.corpus),
            "queries": len(dataset.judged_queries),
            "queries_evaluated": len(queries),
        },
        "config": _config(settings, llms),
        "ingest": _ingest(ingest, failed_documents),
        "timings": timings,
        "retrieval": {
            name: {"means": run.means, "per_query": run.per_query, "seconds": run.seconds}
            for name, run in runs.items()
        },
        "ragas": {
            "mode": ragas_mode,
            "llm_metrics": ragas.llm_metrics,
            "notes": ragas.notes,
            "means": ragas.means,
            "per_item": ragas.per_item,
            "items": [asdict(i) for i in ragas.items],
            "n_items": len(ragas.items),
            "errors": sum(1 for i in ragas.items if i.error),
            "from_cache": ragas.from_cache,
        },
        "slices": {
            "retrieval: nDCG@10 per system": [
                asdict(row)
                for row in slice_means(
                    tags, {name: run.per_query["ndcg@10"] for name, run in runs.items()}
                )
            ],
            "RAGAS": [asdict(row) for row in slice_means(item_tags, ragas.per_item)],
        },
        "worst": _worst(dataset, next(iter(runs.values()))),
    }
    past = past_reports(reports_dir, dataset.name, before=run_dir.name)
    comparison = compare(report, past[-1] if past else None, settings.eval.regression_threshold)
    report["comparison"] = comparison.to_json()
    report["regression"] = bool(comparison.regressions)
    report["history"] = [_history_point(p) for p in past[-(_HISTORY - 1) :]]
    report["history"].append(_history_point(report))
    write_report(run_dir, report)
    return EvalOutcome(run_dir, report)


def run_nightly(settings: Settings, platform: PlatformFactory) -> Path:
    """The nightly job: the configured dataset, resuming a run a crash left unfinished.

    Returns the run folder. A regression is logged and recorded in the report; it is the CLI's
    exit code, not the beat task, that gates.
    """
    if settings.eval.dataset is None:
        raise ValueError("set RAG_EVAL_DATASET to the BEIR-format folder the nightly job evaluates")
    outcome = run_eval(
        settings,
        settings.eval.dataset,
        golden_path=settings.eval.golden,
        resume=True,
        platform=platform,
    )
    if outcome.regression:
        log.warning("evaluation regression, see %s", outcome.run_dir / "report.html")
    return outcome.run_dir
