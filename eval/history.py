"""A tenant's finished evaluation runs on disk, its accepted baselines, and the latest figures.

Light on purpose (no model, no RAGAS import): the API reads reports and serves the gauges with it.
Layout: `reports_dir/tenants/<tenant>/<run id>/report.{json,html}`, and
`reports_dir/tenants/<tenant>/baseline.json` listing the accepted runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.types import TenantScope
from eval.metrics import mean

SECTION = "served"  # one retrieval section whatever the mode, so modes compare with each other


class EvalRunError(ValueError):
    """A run that cannot start (no golden set) or a run id that does not exist; says why."""


def tenant_dir(reports_dir: Path, tenant: str) -> Path:
    TenantScope(tenant)  # refuses a name that is not a tenant id (and so not a safe folder)
    return reports_dir / "tenants" / tenant


def finished_reports(reports_dir: Path, tenant: str) -> list[dict[str, Any]]:
    """The tenant's finished reports, oldest first."""
    found = []
    for path in sorted(tenant_dir(reports_dir, tenant).glob("*/report.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return found


def read_report(reports_dir: Path, tenant: str, run_id: str) -> Path | None:
    """The run folder of a finished report of this tenant, or None."""
    root = tenant_dir(reports_dir, tenant)
    run = root / run_id
    if run.parent != root or not (run / "report.json").is_file():
        return None
    return run


def _baseline_path(reports_dir: Path, tenant: str) -> Path:
    return tenant_dir(reports_dir, tenant) / "baseline.json"


def accepted_runs(reports_dir: Path, tenant: str) -> list[str]:
    path = _baseline_path(reports_dir, tenant)
    return json.loads(path.read_text(encoding="utf-8"))["accepted"] if path.is_file() else []


def accept_baseline(reports_dir: Path, tenant: str, run_id: str) -> None:
    """Accept a finished run as a baseline: the best accepted run is what runs compare with."""
    if read_report(reports_dir, tenant, run_id) is None:
        raise EvalRunError(f"tenant {tenant!r} has no finished run {run_id!r}")
    runs = [r for r in accepted_runs(reports_dir, tenant) if r != run_id] + [run_id]
    path = _baseline_path(reports_dir, tenant)
    path.write_text(json.dumps({"accepted": runs}), encoding="utf-8")


def _overall(report: Mapping[str, Any]) -> float:
    values = [*report["ragas"]["means"].values()]
    values += report["retrieval"].get(SECTION, {}).get("means", {}).values()
    return mean(dict(enumerate(values)))


def baseline_report(reports_dir: Path, tenant: str, before: str) -> dict[str, Any] | None:
    """The best accepted run older than `before`; with none accepted, the tenant's first run."""
    past = [r for r in finished_reports(reports_dir, tenant) if r["run_id"] < before]
    accepted = set(accepted_runs(reports_dir, tenant))
    chosen = [r for r in past if r["run_id"] in accepted] or past[:1]
    return max(chosen, key=_overall) if chosen else None


def evaluated_tenants(reports_dir: Path) -> list[str]:
    root = reports_dir / "tenants"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def latest_gauges(reports_dir: Path) -> list[tuple[str, str, float, bool]]:
    """(tenant, metric, latest mean, regressed against the baseline) for every tenant's latest
    run, for the Prometheus gauges."""
    rows = []
    for tenant in evaluated_tenants(reports_dir):
        reports = finished_reports(reports_dir, tenant)
        if not reports:
            continue
        latest = reports[-1]
        flagged = {f"{d['section']}/{d['metric']}" for d in latest["comparison"]["regressions"]}
        means = {f"ragas/{m}": v for m, v in latest["ragas"]["means"].items()}
        for section, r in latest["retrieval"].items():
            means.update({f"retrieval/{section}/{m}": v for m, v in r["means"].items()})
        for metric, value in sorted(means.items()):
            rows.append((tenant, metric, value, metric in flagged))
    return rows
