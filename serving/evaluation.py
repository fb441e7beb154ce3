"""Entry point of a tenant's evaluation: the served SearchService, the golden store, the LLMs.

`rag eval --tenant T` and the nightly beat task call these, so a report measures what
`/v1/search` and `/v1/answer` serve.
"""

from __future__ import annotations

import logging

from eval.evaluation_store import EvaluationStore
from eval.golden_store import GoldenStore
from eval.history import EvalRunError
from eval.pipeline import EvalLLMs, llms_from_settings
from eval.runner import Progress
from eval.tenant import RunConfig, TenantOutcome, run_tenant_eval
from serving.platform import Platform

log = logging.getLogger(__name__)


def evaluate_tenant(
    platform: Platform,
    tenant: str,
    *,
    config: RunConfig | None = None,
    sample_size: int | None = None,
    llms: EvalLLMs | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> TenantOutcome:
    """One run over the tenant's approved golden items, kept in the state database;
    `llms` defaults to the configured ones. A run that reranks without a reranker is refused at
    once, with the reason none loaded."""
    from eval.ragas_scoring import LocalRagasEmbeddings

    s = platform.settings
    if config is not None and config.rerank and not platform.served_search.reranker.available:
        reason = platform.served_search.reranker.reason
        raise EvalRunError(f"reranking is unavailable: {reason}")
    store = GoldenStore.open(s)
    try:
        items = store.items(tenant, "approved")
    finally:
        store.close()
    llms = llms if llms is not None else llms_from_settings(s)
    runs = EvaluationStore.open(s)
    try:
        return run_tenant_eval(
            s,
            platform.search,
            tenant,
            items,
            llms,
            runs,
            config=config,
            embeddings=LocalRagasEmbeddings(platform.runtime.embedder) if llms.judge else None,
            sample_size=sample_size,
            resume=resume,
            progress=progress,
        )
    finally:
        runs.close()


def evaluate_every_tenant(platform: Platform) -> dict[str, str]:
    """The nightly run: every tenant with approved golden items, each resumed if a crash cut it
    short; one tenant's failure is logged and the others still run. Tenant -> run id or
    error."""
    store = GoldenStore.open(platform.settings)
    try:
        tenants = store.tenants()
    finally:
        store.close()
    done: dict[str, str] = {}
    for tenant in tenants:
        try:
            done[tenant] = evaluate_tenant(platform, tenant).run_id
        except Exception as exc:
            log.exception("nightly evaluation of tenant %s failed", tenant)
            done[tenant] = f"failed: {type(exc).__name__}: {exc}"
    return done
