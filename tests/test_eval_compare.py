"""The regression gate on report data: worse by more than the threshold is flagged, equal is not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from eval.compare import compare, past_reports


def _report(run_id: str, ndcg: dict[str, float], faithfulness: dict[str, float]) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "dataset": {"name": "tiny"},
        "retrieval": {
            "hybrid": {"per_query": {"ndcg@10": ndcg, "recall@10": {q: 1.0 for q in ndcg}}}
        },
        "ragas": {"per_item": {"faithfulness": faithfulness}},
    }


BASE = _report("r1", {"q1": 1.0, "q2": 0.8, "q3": 0.6, "q4": 0.4}, {"g1": 1.0, "g2": 0.5})


def test_equal_run_is_not_a_regression() -> None:
    same = copy.deepcopy(BASE) | {"run_id": "r2"}
    result = compare(same, BASE, 0.03)
    assert result.previous_run == "r1"
    assert result.regressions == []
    assert {(d.section, d.metric) for d in result.deltas} == {
        ("retrieval/hybrid", "ndcg@10"),
        ("retrieval/hybrid", "recall@10"),
        ("ragas", "faithfulness"),
    }
    assert all(d.change == 0 for d in result.deltas)


def test_worsened_run_is_flagged_with_its_queries() -> None:
    worse = _report("r2", {"q1": 0.5, "q2": 0.8, "q3": 0.55, "q4": 0.4}, {"g1": 1.0, "g2": 0.5})
    result = compare(worse, BASE, 0.03)
    [regression] = result.regressions
    assert (regression.section, regression.metric) == ("retrieval/hybrid", "ndcg@10")
    assert regression.change == pytest.approx(-0.1375)
    # The queries that got worse, worst first; unchanged ones are not listed.
    assert [(q.id, q.previous, q.current) for q in regression.worse] == [
        ("q1", 1.0, 0.5),
        ("q3", 0.6, 0.55),
    ]
    assert result.to_json()["regressions"][0]["change"] == pytest.approx(-0.1375)


def test_threshold_is_absolute_points_and_ragas_counts() -> None:
    small = _report("r2", {"q1": 0.96, "q2": 0.8, "q3": 0.6, "q4": 0.4}, {"g1": 1.0, "g2": 0.5})
    assert compare(small, BASE, 0.03).regressions == []  # -0.01: within 3 points
    assert compare(small, BASE, 0.005).regressions  # but not within half a point
    judged_worse = _report("r2", BASE["retrieval"]["hybrid"]["per_query"]["ndcg@10"], {"g1": 0.9})
    [regression] = compare(judged_worse, BASE, 0.03).regressions
    assert regression.section == "ragas" and regression.n == 1  # only the shared item counts


def test_compares_only_shared_queries() -> None:
    # A smaller sample that scores its queries exactly as before is not a drop in the mean.
    subset = _report("r2", {"q3": 0.6, "q4": 0.4}, {"g1": 1.0})
    result = compare(subset, BASE, 0.03)
    assert result.regressions == []
    ndcg = next(d for d in result.deltas if d.metric == "ndcg@10")
    assert (ndcg.n, ndcg.previous, ndcg.current) == (2, pytest.approx(0.5), pytest.approx(0.5))


def test_no_previous_run() -> None:
    result = compare(BASE, None, 0.03)
    assert result.previous_run is None and result.regressions == []


def test_past_reports_same_dataset_older_only(tmp_path: Path) -> None:
    runs = {"20250101T000000Z": "tiny", "20250102T000000Z": "other"}
    runs |= {"20250103T000000Z": "tiny", "20250105T000000Z": "tiny"}
    for run_id, name in runs.items():
        (tmp_path / run_id).mkdir()
        report = {"run_id": run_id, "dataset": {"name": name}}
        (tmp_path / run_id / "report.json").write_text(json.dumps(report))
    (tmp_path / "20250102T120000Z").mkdir()  # an unfinished run: no report.json
    (tmp_path / "20250101T120000Z").mkdir()
    (tmp_path / "20250101T120000Z" / "report.json").write_text("{not json")
    found = past_reports(tmp_path, "tiny", before="20250104T000000Z")
    assert [r["run_id"] for r in found] == ["20250101T000000Z", "20250103T000000Z"]
