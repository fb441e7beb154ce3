"""Evaluation runs on both state backends: reports, pages, baselines and scored items per tenant,
shared by every host of one PostgreSQL; and the report folders of an earlier release, imported
once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.settings import Settings
from core.types import InvalidTenantError
from eval.evaluation_store import IMPORTED, EvaluationStore
from eval.history import EvalRunError, accept_baseline, latest_gauges
from tests.support.services import postgres_url


def _report(tenant: str, run_id: str, recall: float, note: str = "") -> dict[str, Any]:
    """The parts of a tenant's report that the store's readers use."""
    return {
        "run_id": run_id,
        "tenant": tenant,
        "note": note,
        "ragas": {"means": {"string_similarity": float("nan")}},
        "retrieval": {"served": {"means": {"recall@5": recall}}},
        "comparison": {"regressions": []},
    }


def _finished(store: EvaluationStore, tenant: str, recall: float, page: str = "<p>") -> str:
    run_id = store.start_run(tenant, resume=False)
    store.finish_run(tenant, run_id, _report(tenant, run_id, recall), page)
    return run_id


@pytest.fixture
def store(state_settings: Settings) -> Any:
    opened = EvaluationStore.open(state_settings)
    yield opened
    opened.close()


def test_a_run_is_unfinished_until_its_report_and_page_are_stored(store: EvaluationStore) -> None:
    run_id = store.start_run("acme", resume=False)
    assert store.start_run("acme", resume=True) == run_id  # the unfinished run, resumed
    assert store.report("acme", run_id) is None and store.page("acme", run_id) is None
    assert store.finished_reports("acme") == [] and not store.is_finished("acme", run_id)
    report = _report("acme", run_id, 0.5, note="naïve \x00 \u2028")
    store.finish_run("acme", run_id, report, "<p>a NUL \x00 in a question</p>")
    stored = store.report("acme", run_id)
    assert stored is not None and stored["note"] == report["note"]
    assert (
        stored["ragas"]["means"]["string_similarity"]
        != stored["ragas"]["means"]["string_similarity"]
    )  # NaN, as written
    assert store.page("acme", run_id) == "<p>a NUL \ufffd in a question</p>"
    assert store.start_run("acme", resume=True) != run_id  # finished: a new run starts
    with pytest.raises(LookupError):
        store.finish_run("acme", "20000101T000000Z", report, "")


def test_runs_are_their_tenants_and_ids_are_matched_whole(store: EvaluationStore) -> None:
    first = _finished(store, "acme", 0.5)
    assert [r["run_id"] for r in store.finished_reports("acme")] == [first]
    assert store.finished_reports("globex") == [] and store.report("globex", first) is None
    for other in (first + "\n", first + "\x00", "../" + first, ""):
        assert store.report("acme", other) is None and store.page("acme", other) is None
    with pytest.raises(InvalidTenantError):
        store.report("acme\n", first)


def test_a_run_starting_in_a_taken_second_takes_a_suffix(store: EvaluationStore) -> None:
    # Runs of every second of the next minute: a run starting in one of them takes a suffix.
    now = datetime.now(UTC)
    taken = [(now + timedelta(seconds=n)).strftime("%Y%m%dT%H%M%SZ") for n in range(60)]
    row = {"tenant": "acme", "status": "running", "started_at": 0.0, "finished_at": None}
    store.adopt([{**row, "run_id": t, "report": None, "page": None} for t in taken])
    run_id = store.start_run("acme", resume=False)
    assert run_id.endswith("-1") and run_id.removesuffix("-1") in taken, run_id
    store.finish_run("acme", run_id, _report("acme", run_id, 0.7), "<p>")
    assert store.latest_reports()["acme"]["run_id"] == run_id


def test_baselines_are_accepted_finished_runs(store: EvaluationStore) -> None:
    first, second = _finished(store, "acme", 0.5), _finished(store, "acme", 0.6)
    unfinished = store.start_run("acme", resume=False)
    for run_id in (unfinished, "20000101T000000Z"):
        with pytest.raises(EvalRunError, match="has no finished run"):
            accept_baseline(store, "acme", run_id)
    with pytest.raises(EvalRunError):
        accept_baseline(store, "globex", first)  # another tenant's run
    accept_baseline(store, "acme", second)
    accept_baseline(store, "acme", first)
    assert store.accepted_runs("acme") == [second, first]
    accept_baseline(store, "acme", second)  # again: the latest accepted
    assert store.accepted_runs("acme") == [first, second] and store.accepted_runs("globex") == []


def test_scored_items_belong_to_their_run(store: EvaluationStore) -> None:
    run_id = store.start_run("acme", resume=False)
    items = store.items_of("acme", run_id)
    assert items.get("q1") is None
    items.put("q1", '{"id": "q1", "v": 1}')
    items.put("q1", '{"id": "q1", "v": 2}')  # scored again: replaced
    assert store.items_of("acme", run_id).get("q1") == '{"id": "q1", "v": 2}'
    assert store.items_of("globex", run_id).get("q1") is None
    assert store.items_of("acme", "20000101T000000Z").get("q1") is None


def test_the_gauges_read_each_tenants_latest_run(store: EvaluationStore) -> None:
    _finished(store, "acme", 0.5)
    _finished(store, "acme", 0.8)
    _finished(store, "globex", 0.3)
    store.start_run("globex", resume=False)  # unfinished: not a latest report
    gauges = {(t, m): v for t, m, v, _ in latest_gauges(store)}
    assert gauges[("acme", "retrieval/served/recall@5")] == 0.8
    assert gauges[("globex", "retrieval/served/recall@5")] == 0.3


def test_a_run_started_on_one_host_is_read_and_resumed_on_another(tmp_path: Path) -> None:
    url = postgres_url("evaluations_two_hosts")
    a, b = (
        Settings(data_dir=tmp_path / h, state={"url": url}, eval_reports_dir=tmp_path / h / "r")
        for h in ("a", "b")
    )
    on_a, on_b = EvaluationStore.open(a), EvaluationStore.open(b)
    try:
        finished = _finished(on_a, "acme", 0.5, page="<p>from host a</p>")
        crashed = on_a.start_run("acme", resume=False)
        on_a.items_of("acme", crashed).put("q1", "{}")
        assert on_b.page("acme", finished) == "<p>from host a</p>"
        assert on_b.start_run("acme", resume=True) == crashed
        assert on_b.items_of("acme", crashed).get("q1") == "{}"
    finally:
        on_a.close()
        on_b.close()
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # no file of state


def _old_release_folders(reports: Path) -> dict[str, str]:
    """`reports/tenants/` as the release before the state database left it: two finished runs
    of acme (one accepted), one it was cut short in with a scored item, and what is no run."""
    root = reports / "tenants" / "acme"
    runs = {"done": "20240101T000000Z", "later": "20240102T000000Z", "cut": "20240103T000000Z"}
    for name in ("done", "later"):
        run = root / runs[name]
        run.mkdir(parents=True)
        (run / "run.json").write_text(json.dumps({"started_at": 1700000000.0}))
        (run / "report.html").write_text(f"<p>{name}</p>")
        (run / "report.json").write_text(json.dumps(_report("acme", runs[name], 0.5)))
    cut = root / runs["cut"] / "items"
    cut.mkdir(parents=True)
    (cut.parent / "run.json").write_text(json.dumps({"started_at": 1700000000.0}))
    (cut / "0f3a.json").write_text(json.dumps({"id": "q1", "fingerprint": "f"}))
    (cut / "broken.json").write_text("{")  # scored again on resume, not a failed import
    (root / "baseline.json").write_text(json.dumps({"accepted": [runs["done"]]}))
    (root / "notes").mkdir()  # not a run
    (reports / "tenants" / "not.a.tenant" / runs["done"]).mkdir(parents=True)
    (reports / "20240101T000000Z").mkdir()  # a benchmark's run: stays a file
    (reports / "20240101T000000Z" / "report.json").write_text("{}")
    return runs


def test_an_earlier_releases_report_folders_are_imported_once(state_settings: Settings) -> None:
    reports = state_settings.data_dir.parent / "reports"
    runs = _old_release_folders(reports)
    settings = state_settings.updated(eval_reports_dir=reports)
    store = EvaluationStore.open(settings)
    try:
        reported = [r["run_id"] for r in store.finished_reports("acme")]
        assert reported == [runs["done"], runs["later"]]
        assert store.page("acme", runs["later"]) == "<p>later</p>"
        assert store.accepted_runs("acme") == [runs["done"]]
        assert store.start_run("acme", resume=True) == runs["cut"]
        assert json.loads(store.items_of("acme", runs["cut"]).get("q1") or "{}")["id"] == "q1"
        assert (reports / "tenants" / IMPORTED).is_file()
        # Imported: the folders are no longer read, and what the store holds is its own.
        store.finish_run("acme", runs["cut"], _report("acme", runs["cut"], 0.9), "<p>cut</p>")
        (reports / "tenants" / "acme" / runs["later"] / "report.html").unlink()
    finally:
        store.close()
    again = EvaluationStore.open(settings)
    try:
        assert again.page("acme", runs["later"]) == "<p>later</p>"
        assert again.is_finished("acme", runs["cut"])
    finally:
        again.close()
    (reports / "tenants" / IMPORTED).unlink()  # as if an import had been cut short
    repeated = EvaluationStore.open(settings)
    try:  # rows already there are left as they are: nothing doubled, nothing reverted
        assert [r["run_id"] for r in repeated.finished_reports("acme")] == list(runs.values())
        assert repeated.page("acme", runs["cut"]) == "<p>cut</p>"
        assert repeated.accepted_runs("acme") == [runs["done"]]
    finally:
        repeated.close()
    assert (reports / "20240101T000000Z" / "report.json").is_file()
