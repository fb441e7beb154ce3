"""A tenant's evaluation against the served index: its golden set through `/v1/search`'s and
`/v1/answer`'s own code, scored by RAGAS and, where relevant ids exist, by retrieval metrics.

The answer gets `eval.context_k` chunks, as `/v1/answer` would; the retrieval metrics rank a
second search of the same question as deep as their deepest cutoff (`eval.metrics.MAX_CUTOFF`
chunks), so recall@50 or precision@10 never count hits the run did not fetch.

Each approved question goes through the `SearchService` the caller passes (the one the API
serves, `serving.platform.Platform.search`) with the run's mode, rerank and filters, and is
answered by the answer builder `/v1/answer` uses (`core.llm`). A run is bounded (sample size,
concurrency, per-item timeout), resumable (scored items are stored with the run, so a run a crash
interrupted continues where it stopped, on any host), and an LLM or judge failure marks its item,
not the run. Runs, their reports and pages live in the state database (`eval.evaluation_store`),
so the API of any host serves what a worker of another made; the gate compares with the tenant's
baseline, an accepted run (`eval.history.accept_baseline`), and keeps flagging until the metric
recovers or another run is accepted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from core.index import FieldFilter
from core.llm import PROMPT_DIGEST
from core.model_digest import model_label
from core.settings import Settings
from core.types import TenantScope
from eval.compare import compare
from eval.evaluation_store import EvaluationStore
from eval.golden import GoldenItem, sample
from eval.history import SECTION, EvalRunError, baseline_report
from eval.metrics import MAX_CUTOFF, mean, score_run
from eval.pipeline import EvalLLMs, ragas_scorer
from eval.report import render_tenant_html
from eval.runner import Progress, Retrieved
from retrieval.filters import FilterLimits, to_field_filters
from retrieval.search import RankedChunk, SearchMode, SearchRequest, SearchService

log = logging.getLogger(__name__)
_HISTORY = 30


@dataclass(frozen=True)
class RunConfig:
    """How each question is searched, recorded in the report so runs can be told apart."""

    mode: SearchMode = "hybrid"
    rerank: bool = False
    filters: tuple[FieldFilter, ...] = ()
    filter_json: list[dict[str, Any]] = field(default_factory=list)  # as the API takes them


@dataclass(frozen=True)
class TenantOutcome:
    """A finished run: its id (with the tenant, what the API and a link name it by) and report."""

    tenant: str
    run_id: str
    report: dict[str, Any]

    @property
    def regression(self) -> bool:
        return bool(self.report["regression"])


def run_config(
    settings: Settings, mode: str, rerank: bool, conditions: Sequence[Mapping[str, Any]]
) -> RunConfig:
    """A run's search settings from the API's JSON filter conditions; `FilterError` names the
    bad field, a ValueError the bad mode."""
    if mode not in ("hybrid", "dense", "bm25", "graph"):
        raise ValueError(f"mode must be hybrid, dense, bm25 or graph, not {mode!r}")
    pairs = []
    for c in conditions:
        ops = dict(c)
        pairs.append((str(ops.pop("field", "")), ops))
    filters = to_field_filters(
        pairs, FilterLimits(settings.api.max_filters, settings.api.max_filter_values)
    )
    return RunConfig(mode, rerank, filters, [dict(c) for c in conditions])  # type: ignore[arg-type]


def fingerprint(
    settings: Settings, service: SearchService, config: RunConfig, llms: EvalLLMs
) -> dict[str, Any]:
    """What decides a run's results; its digest tells whether two runs are comparable."""
    retrieval = settings.retrieval
    reranker = "off"
    if config.rerank:  # only then: reading the service's reranker loads it
        reranker = model_label(getattr(service.reranker, "name", "none"))
    facts = {
        "embedding_model": model_label(settings.models.embedding_model),
        "chunk_size": settings.ingest.chunk_size,
        "chunk_overlap": settings.ingest.chunk_overlap,
        "fusion": f"rrf k={retrieval.rrf_k} candidates={retrieval.candidates_per_leg}",
        "graph_legs": ",".join(service.leg_names) or "none",
        "graph_in_hybrid": settings.graph.in_hybrid,
        "reranker": reranker,
        "mode": config.mode,
        "filters": json.dumps(config.filter_json, sort_keys=True),
        "context_k": settings.eval.context_k,
        "ranking_depth": MAX_CUTOFF,
        "prompt_digest": PROMPT_DIGEST,
        "llms": llms.identity or "none",
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    return {**facts, "digest": digest}


def _documents(chunks: Sequence[RankedChunk]) -> list[str]:
    """Distinct documents, each at the rank of its first chunk, as the metrics count them."""
    return list(dict.fromkeys(str(c.payload.get("doc_id", "")) for c in chunks))


def _sort_key(row: Mapping[str, Any]) -> tuple[int, float, str]:
    """Worst first: failed items, then by the mean of their scores."""
    scores = [v for v in row["scores"].values() if not math.isnan(v)]
    return (0 if row["error"] else 1, mean(dict(enumerate(scores))), row["id"])


def run_tenant_eval(
    settings: Settings,
    service: SearchService,
    tenant: str,
    items: Sequence[GoldenItem],
    llms: EvalLLMs,
    store: EvaluationStore,
    *,
    config: RunConfig | None = None,
    embeddings: Any = None,
    sample_size: int | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> TenantOutcome:
    """Evaluate `items` (the tenant's approved golden items) on the served index, the run kept
    in `store`; `progress` receives a line when the searches start and as the items are scored
    (about ten lines)."""
    from eval.ragas_scoring import RagasCase

    config = config or RunConfig()
    if not items:
        raise EvalRunError(f"tenant {tenant!r} has no approved golden items")
    started = time.perf_counter()
    items = sample(list(items), sample_size or settings.eval.ragas_sample)
    run_id = store.start_run(tenant, resume)
    scope = TenantScope(tenant)
    say = progress or (lambda line: None)
    say(f"searching {len(items)} golden items of {tenant} ({config.mode})")
    hits: dict[str, list[dict[str, Any]]] = {}
    ranked: dict[str, list[str]] = {}
    cases = []
    for item in items:
        answer_req = SearchRequest(
            item.question,
            top_k=settings.eval.context_k,
            mode=config.mode,
            filters=config.filters,
            rerank=config.rerank,
            rerank_top_n=settings.retrieval.rerank_top_n,
        )
        chunks = service.search(scope, answer_req).chunks
        hits[item.id] = [
            {"id": c.id, "doc_id": c.payload.get("doc_id", ""), "score": c.score} for c in chunks
        ]
        if item.relevant_doc_ids:
            ranking_req = replace(answer_req, top_k=MAX_CUTOFF)
            ranked[item.id] = _documents(service.search(scope, ranking_req).chunks)
        contexts = [
            Retrieved(str(c.payload.get("doc_id", "")), str(c.payload.get("text", "")), c.id)
            for c in chunks
        ]
        cases.append(RagasCase(item, contexts, []))
    step = max(1, len(cases) // 10)

    def scored(done: int, total: int) -> None:
        if done == total or (done and done % step == 0):
            say(f"scored {done} of {total} golden items")

    cache = store.items_of(tenant, run_id)
    ragas = ragas_scorer(settings, cache, llms, embeddings).score(cases, scored)
    judged = {i.id: {d: 1 for d in i.relevant_doc_ids} for i in items if i.relevant_doc_ids}
    per_query = score_run(ranked, judged) if judged else {}
    rows = [
        {
            "id": r.id,
            "question": r.question,
            "reference": r.reference,
            "answer": r.response,
            "hits": hits[r.id],
            "ranked_doc_ids": ranked.get(r.id, []),
            "contexts": r.contexts,
            "scores": {
                **r.scores,
                **{m: v[r.id] for m, v in per_query.items() if r.id in v},
            },
            "tags": r.tags,
            "error": r.error,
        }
        for r in ragas.items
    ]
    report: dict[str, Any] = {
        "run_id": run_id,
        "tenant": tenant,
        "created_at": datetime.now(UTC).isoformat(),
        "config": fingerprint(settings, service, config, llms),
        "search": {
            "mode": config.mode,
            "rerank": config.rerank,
            "filters": config.filter_json,
            "top_k": settings.eval.context_k,
            "ranking_depth": MAX_CUTOFF,
        },
        "retrieval": {
            SECTION: {"means": {m: mean(v) for m, v in per_query.items()}, "per_query": per_query}
        }
        if per_query
        else {},
        "ragas": {
            "llm_metrics": ragas.llm_metrics,
            "notes": ragas.notes,
            "means": ragas.means,
            "per_item": ragas.per_item,
            "n_items": len(ragas.items),
            "errors": sum(1 for i in ragas.items if i.error),
            "items": [{"id": i.id, "error": i.error} for i in ragas.items],
            "from_cache": ragas.from_cache,
        },
        "items": sorted(rows, key=_sort_key),
        "seconds": time.perf_counter() - started,
    }
    past = [r for r in store.finished_reports(tenant) if r["run_id"] < run_id]
    base = baseline_report(past, store.accepted_runs(tenant), before=run_id)
    comparison = compare(report, base, settings.eval.regression_threshold)
    report["comparison"] = comparison.to_json()
    report["regression"] = bool(comparison.regressions)
    report["history"] = [_history_point(p) for p in [*past[-(_HISTORY - 1) :], report]]
    store.finish_run(tenant, run_id, report, render_tenant_html(report))
    for d in comparison.regressions:
        log.warning(
            "evaluation regression for tenant %s: %s %s %.3f -> %.3f against baseline %s (run %s)",
            tenant,
            d.section,
            d.metric,
            d.previous,
            d.current,
            comparison.previous_run,
            run_id,
        )
    return TenantOutcome(tenant, run_id, report)


def _history_point(report: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "run_id": report["run_id"],
        "retrieval": {s: r["means"] for s, r in report["retrieval"].items()},
        "ragas": report["ragas"]["means"],
    }
