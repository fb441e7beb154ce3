"""The nightly evaluation: metrics, RAGAS and the regression gate on the configured dataset.

It evaluates in its own workspace (its own shard and tenant), so it never needs the served
index's lock and never shows evaluation documents to a tenant. A regression is logged and kept in
the report; gating belongs to `rag eval`'s exit code, not to a scheduled task.
"""

from __future__ import annotations

from core.settings import get_settings
from workers.app import app


@app.task(name="rag.eval.nightly")
def nightly_eval() -> str:
    from eval.pipeline import run_nightly

    return str(run_nightly(get_settings()))
