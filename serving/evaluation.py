"""Entry point of a tenant's evaluation: the served SearchService, the golden store, the LLMs.

`rag eval --tenant T` and the nightly beat task call these, so a report measures what
`/v1/search` and `/v1/answer` serve.
"""

from __future__ import annotations

import logging
from pathlib import Path

from eval.golden_store import GoldenStore
from eval.history import EvalRunError
from eval.pipeline import EvalLLMs, EvalOutcome, llms_from_settings
from eval.runner import Progress
from eval.tenant import RunConfig, run_tenant_eval
from serving.platform import Platform

log = logging.getLogger(__name__)


def evaluate_tenant(
    platform: Platform,
    tenant: str,
    *,
    config: RunConfig | None = None,
    reports_dir: Path | None = None,
    sample_size: int | None = None,
    llms: EvalLLMs | None = None,
    resume: bool = True,
    progress: Progress | None = None,
) -> EvalOutcome:
    """One run over the tenant's approved golden items; `llms` defaults to the configured ones.
    A run that reranks without a reranker is refused at once, with the reason none loaded."""
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
    return run_tenant_eval(
        s,
        platform.search,
        tenant,
        items,
        llms,
        config=config,
        embeddings=LocalRagasEmbeddings(platform.runtime.embedder) if llms.judge else None,
        reports_dir=reports_dir,
        sample_size=sample_size,
        resume=resume,
        progress=progress,
    )


def evaluate_every_tenant(platform: Platform) -> dict[str, str]:
    """The nightly run: every tenant with approved golden items, each resumed if a crash cut it
    short; one tenant's failure is logged and the others still run. Tenant -> run folder or
    error."""
    store = GoldenStore.open(platform.settings)
    try:
        tenants = store.tenants()
    finally:
        store.close()
    done: dict[str, str] = {}
    for tenant in tenants:
        try:
            done[tenant] = str(evaluate_tenant(platform, tenant).run_dir)
        except Exception as exc:
            log.exception("nightly evaluation of tenant %s failed", tenant)
            done[tenant] = f"failed: {type(exc).__name__}: {exc}"
    return done
