"""The nightly evaluation: every tenant with a golden set, on the served index.

Each run goes through the served SearchService and answer builder (`serving.evaluation`), so
under `rag up` it runs in the process that holds the shard, and in the distributed mode any worker
runs it against the Qdrant server. A regression is logged at WARNING and kept in the report;
gating belongs to `rag eval`'s exit code, not to a scheduled task. The BEIR benchmark mode
(`RAG_EVAL_DATASET`) still runs nightly when it is set.
"""

from __future__ import annotations

import json
from pathlib import Path

from workers.app import app
from workers.context import context


@app.task(name="rag.eval.tenants")
def nightly_tenant_eval() -> dict[str, str]:
    from serving.evaluation import evaluate_every_tenant

    return evaluate_every_tenant(context().platform)


@app.task(name="rag.eval.tenant")
def tenant_eval(
    tenant: str,
    mode: str = "hybrid",
    rerank: bool = False,
    filters: list | None = None,
    sample: int | None = None,
    ticket: str | None = None,
) -> dict[str, object]:
    """One tenant's run, for `rag eval --tenant` when `rag up` holds the embedded shard: it runs
    where the index is open, and answers in `data_dir/eval-requests/<ticket>.json` (the two
    processes share the data dir, as the embedded shard is local)."""
    from eval.tenant import run_config
    from serving.evaluation import evaluate_tenant

    platform = context().platform
    try:
        config = run_config(platform.settings, mode, rerank, filters or [])
        outcome = evaluate_tenant(platform, tenant, config=config, sample_size=sample)
        answer = {"run_dir": str(outcome.run_dir.resolve()), "regression": outcome.regression}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    if ticket is not None:
        _answer(platform.settings.data_dir, ticket, answer)
    return answer


def _answer(data_dir: Path, ticket: str, answer: dict[str, object]) -> None:
    folder = data_dir / "eval-requests"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{ticket}.json.tmp"
    tmp.write_text(json.dumps(answer), encoding="utf-8")
    tmp.replace(folder / f"{ticket}.json")


@app.task(name="rag.eval.nightly")
def nightly_eval() -> str:
    from eval.pipeline import run_nightly
    from serving.platform import Platform

    settings = context().runtime.settings  # the worker's, not a second read of the environment
    return str(run_nightly(settings, Platform))
