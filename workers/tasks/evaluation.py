"""The nightly evaluation: every tenant with a golden set, on the served index.

Each run goes through the served SearchService and answer builder (`serving.evaluation`), so
under `rag up` it runs in the process that holds the shard, and in the distributed mode any worker
runs it against the Qdrant server. A regression is logged at WARNING and kept in the report;
gating belongs to `rag eval`'s exit code, not to a scheduled task. The BEIR benchmark mode
(`RAG_EVAL_DATASET`) still runs nightly when it is set.
"""

from __future__ import annotations

from core.settings import get_settings
from workers.app import app
from workers.context import context


@app.task(name="rag.eval.tenants")
def nightly_tenant_eval() -> dict[str, str]:
    from serving.evaluation import evaluate_every_tenant

    return evaluate_every_tenant(context().runtime)


@app.task(name="rag.eval.nightly")
def nightly_eval() -> str:
    from eval.pipeline import run_nightly

    return str(run_nightly(get_settings()))
