"""A tenant's finished evaluation runs, its accepted baselines, and the latest figures, read
from the state database (`eval.evaluation_store`), so any host sees the runs any other made.

Light on purpose (no model, no RAGAS import): the API reads reports and serves the gauges with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eval.evaluation_store import EvaluationStore
from eval.metrics import mean

SECTION = "served"  # one retrieval section whatever the mode, so modes compare with each other


class EvalRunError(ValueError):
    """A run that cannot start (no golden set) or a run id that does not exist; says why."""


def accept_baseline(store: EvaluationStore, tenant: str, run_id: str) -> None:
    """Accept a finished run as a baseline: the best accepted run is what runs compare with."""
    if not store.accept(tenant, run_id):
        raise EvalRunError(f"tenant {tenant!r} has no finished run {run_id!r}")


def _overall(report: Mapping[str, Any]) -> float:
    values = [*report["ragas"]["means"].values()]
    values += report["retrieval"].get(SECTION, {}).get("means", {}).values()
    return mean(dict(enumerate(values)))


def baseline_report(
    past: list[dict[str, Any]], accepted: list[str], before: str
) -> dict[str, Any] | None:
    """Of the tenant's finished reports `past` (oldest first), the best accepted run older than
    `before`; with none accepted, the tenant's first run."""
    older = [r for r in past if r["run_id"] < before]
    chosen = [r for r in older if r["run_id"] in set(accepted)] or older[:1]
    return max(chosen, key=_overall) if chosen else None


def latest_gauges(store: EvaluationStore) -> list[tuple[str, str, float, bool]]:
    """(tenant, metric, latest mean, regressed against the baseline) for every tenant's latest
    run, for the Prometheus gauges."""
    rows = []
    for tenant, latest in store.latest_reports().items():
        flagged = {f"{d['section']}/{d['metric']}" for d in latest["comparison"]["regressions"]}
        means = {f"ragas/{m}": v for m, v in latest["ragas"]["means"].items()}
        for section, r in latest["retrieval"].items():
            means.update({f"retrieval/{section}/{m}": v for m, v in r["means"].items()})
        for metric, value in sorted(means.items()):
            rows.append((tenant, metric, value, metric in flagged))
    return rows
