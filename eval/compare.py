"""Past runs, and the regression gate: did any metric drop by more than the threshold?

Runs are compared on the queries they share (a changed sample or golden set compares only what
both runs scored), per section (each retrieval system, and RAGAS) and per metric. A regression
carries the queries that got worse, worst first, so the report shows where the drop came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eval.metrics import mean

Report = Mapping[str, Any]
_EPSILON = 1e-9  # an equal run must never be flagged through float noise
_SHOWN_QUERIES = 20


def sections(report: Report) -> dict[str, dict[str, dict[str, float]]]:
    """Section -> metric -> item id -> value, for every scored section of a report."""
    found = {
        f"retrieval/{system}": run["per_query"]
        for system, run in report.get("retrieval", {}).items()
    }
    ragas = report.get("ragas", {})
    if ragas.get("per_item"):
        # A benchmark's RAGAS answers from one mode's contexts: like its retrieval systems, it
        # compares only with the same mode's. A tenant's run records none: its runs compare
        # whatever their search (`eval.history`).
        found[f"ragas/{ragas['mode']}" if "mode" in ragas else "ragas"] = ragas["per_item"]
    return found


def past_reports(reports_dir: Path, dataset: str, before: str) -> list[dict[str, Any]]:
    """Finished reports of the same dataset with a run id older than `before`, oldest first."""
    found = []
    for path in sorted(reports_dir.glob("*/report.json")):
        if path.parent.name >= before:
            continue
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a half-written or foreign file is not a run
        if report.get("dataset", {}).get("name") == dataset:
            found.append(report)
    return found


@dataclass(frozen=True)
class QueryDiff:
    id: str
    previous: float
    current: float


@dataclass
class Delta:
    section: str
    metric: str
    previous: float
    current: float
    n: int  # items both runs scored
    worse: list[QueryDiff] = field(default_factory=list)

    @property
    def change(self) -> float:
        return self.current - self.previous


@dataclass
class Comparison:
    previous_run: str | None
    threshold: float
    deltas: list[Delta]

    @property
    def regressions(self) -> list[Delta]:
        return [d for d in self.deltas if -d.change > self.threshold + _EPSILON]

    def to_json(self) -> dict[str, Any]:
        def row(d: Delta) -> dict[str, Any]:
            return {**asdict(d), "change": d.change}

        return {
            "previous_run": self.previous_run,
            "threshold": self.threshold,
            "deltas": [row(d) for d in self.deltas],
            "regressions": [row(d) for d in self.regressions],
        }


def compare(current: Report, previous: Report | None, threshold: float) -> Comparison:
    if previous is None:
        return Comparison(None, threshold, [])
    deltas = []
    before = sections(previous)
    for section, metrics in sections(current).items():
        for metric, values in metrics.items():
            old = before.get(section, {}).get(metric)
            common = sorted(set(values) & set(old or {}))
            if not common:
                continue
            worse = sorted(
                (QueryDiff(i, old[i], values[i]) for i in common if values[i] < old[i]),
                key=lambda q: q.current - q.previous,
            )
            deltas.append(
                Delta(
                    section,
                    metric,
                    mean({i: old[i] for i in common}),
                    mean({i: values[i] for i in common}),
                    len(common),
                    worse[:_SHOWN_QUERIES],
                )
            )
    return Comparison(previous["run_id"], threshold, deltas)
