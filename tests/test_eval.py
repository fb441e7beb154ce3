"""`rag eval` end to end on a dozen-document BEIR-format dataset written by the test.

Real ingestion, the real engine and the real MiniLM model; the LLMs are the local stubs from
test_eval_ragas (marked there), since no LLM can run here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.auth import require_operator
from api.errors import install_error_handlers
from api.routes import evaluation
from cli.eval import eval_app
from core.embedding import Embedder
from core.runtime import Runtime
from core.settings import Settings, get_settings
from core.types import Hit, TenantScope
from eval.compare import sections
from eval.golden import GoldenItem
from eval.pipeline import EvalLLMs, EvalOutcome, run_eval, run_nightly
from eval.runner import Retrieved, service_systems, to_documents
from eval.workspace import EvalWorkspace
from serving.platform import Platform
from tests.support.golden import save_golden
from tests.support.ragas import StubAnswerer, StubJudge

DOCS = {
    "d1": ("Photosynthesis", "Plants convert sunlight, water and carbon dioxide into glucose."),
    "d2": ("Volcanoes", "A volcano erupts when magma rises through the crust and escapes as lava."),
    "d3": ("Mitochondria", "Mitochondria are the powerhouse of the cell, producing ATP energy."),
    "d4": ("Honey bees", "Honey bees tell the hive where flowers are with a waggle dance."),
    "d5": ("Glaciers", "Glaciers are slow rivers of ice that carve valleys as they move downhill."),
    "d6": ("Vaccines", "Vaccines train the immune system to recognise a pathogen safely."),
    "d7": ("Chess openings", "The Sicilian Defence is a chess opening that begins e4 c5."),
    "d8": ("Coffee", "Coffee beans are roasted seeds of the Coffea plant and contain caffeine."),
    "d9": (
        "Black holes",
        "A black hole is a region where gravity is so strong light cannot escape.",
    ),
    "d10": ("Roman roads", "The Romans built paved roads across their empire to move armies."),
    "d11": ("Jazz", "Jazz music originated in New Orleans and is known for improvisation."),
    "d12": ("Tides", "Ocean tides are caused by the gravitational pull of the Moon and the Sun."),
    "a/b": ("Odd id", "A document whose id has a slash, to prove ids survive the bucket key."),
}
QUERIES = {
    "q1": ("How do plants make glucose from sunlight?", {"d1": 2}, "biology"),
    "q2": ("What makes a volcano erupt lava?", {"d2": 1}, "earth"),
    "q3": ("Which organelle produces ATP energy in cells?", {"d3": 2}, "biology"),
    "q4": ("How do bees tell the hive where flowers are?", {"d4": 1}, "biology"),
    "q5": ("What causes the ocean tides?", {"d12": 2, "d9": 1}, "earth"),
    "q6": ("How does a vaccine train the immune system?", {"d6": 1}, "biology"),
    "q7": ("Where did jazz music start?", {"d11": 1}, "culture"),
    "q8": ("Which document has an id with a slash?", {"a/b": 1}, "culture"),
}


def write_tiny_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as f:
        for doc_id, (title, text) in DOCS.items():
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as f:
        for qid, (text, _, topic) in QUERIES.items():
            f.write(json.dumps({"_id": qid, "text": text, "metadata": {"topic": topic}}) + "\n")
    with (root / "qrels" / "test.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid, (_, rel, _) in QUERIES.items():
            f.writelines(f"{qid}\t{d}\t{g}\n" for d, g in rel.items())
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_beir(tmp_path_factory.mktemp("beir") / "tiny")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One eval workspace for the module: later runs find the corpus already ingested."""
    return Settings(data_dir=tmp_path_factory.mktemp("data"), llm_base_url=None, llm_api_key=None)


@pytest.fixture(scope="module")
def first(
    settings: Settings, tiny: Path, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> EvalOutcome:
    reports = tmp_path_factory.mktemp("reports")
    return run_eval(
        settings, tiny, reports_dir=reports, llms=EvalLLMs(), embedder=embedder, platform=Platform
    )


def test_report_scores_every_mode(first: EvalOutcome) -> None:
    r = first.report
    assert set(r["retrieval"]) == {"hybrid", "dense", "bm25"}
    assert r["ingest"]["added"] == len(DOCS) and r["ingest"]["failed"] == 0
    for run in r["retrieval"].values():
        assert set(run["per_query"]["ndcg@10"]) == set(QUERIES)
        assert all(0.0 <= v <= 1.0 for v in run["means"].values())
    # Distinct topics: the hybrid mode finds almost everything near the top.
    hybrid = r["retrieval"]["hybrid"]["means"]
    assert hybrid["ndcg@10"] > 0.8 and hybrid["recall@10"] == 1.0
    assert hybrid["precision@10"] == pytest.approx(9 / 8 / 10)  # 9 relevant over 8 queries
    # Chunk hits were mapped back to BEIR ids, the slash id included.
    assert r["retrieval"]["hybrid"]["per_query"]["recall@10"]["q8"] == 1.0
    worst = r["worst"]["queries"]
    assert r["worst"]["system"] == "hybrid" and len(worst) == len(QUERIES)
    assert worst[0]["ndcg@10"] <= worst[-1]["ndcg@10"]
    assert {c["doc_id"] for q in worst for c in q["retrieved"]} <= set(DOCS)
    assert any(c["relevant"] and c["text"] for q in worst for c in q["retrieved"])


def test_report_ragas_without_llm_says_skipped(first: EvalOutcome) -> None:
    g = first.report["ragas"]
    assert g["llm_metrics"] is False and g["n_items"] == len(QUERIES)
    assert set(g["means"]) == {
        "id_context_precision",
        "id_context_recall",
        "nonllm_context_precision",
        "nonllm_context_recall",
    }
    html = (first.run_dir / "report.html").read_text()
    assert "LLM metrics" in html and "were skipped" in html


def test_report_slices_and_html(first: EvalOutcome) -> None:
    rows = first.report["slices"]["retrieval: nDCG@10 per system"]
    topics = {row["value"]: row["n"] for row in rows if row["tag"] == "topic"}
    assert topics == {"biology": 4, "earth": 2, "culture": 2}
    assert {row["value"] for row in rows if row["tag"] == "relevant docs"} == {"1", "2"}
    html = (first.run_dir / "report.html").read_text()
    # Self-contained: every plot inline (bars, RAGAS bars, two trends), no external resource.
    assert html.count('src="data:image/png;base64,') == 4
    assert "http://" not in html and "https://" not in html
    assert "First run of this dataset" in html
    assert "Worst 8 queries" in html
    assert json.loads((first.run_dir / "report.json").read_text())["run_id"] == first.run_dir.name


def _worse_system(runtime: Runtime, scope: TenantScope) -> dict[str, Any]:
    return {"reversed": lambda query: sorted(DOCS, reverse=True)}


def _good_system(runtime: Runtime, scope: TenantScope) -> dict[str, Any]:
    return {"reversed": lambda query: [d for q in QUERIES.values() if q[0] == query for d in q[1]]}


def test_gate_flags_a_worse_run_and_not_an_equal_one(
    settings: Settings, tiny: Path, embedder: Embedder, tmp_path: Path
) -> None:
    def run(extra: Any) -> EvalOutcome:
        return run_eval(
            settings,
            tiny,
            platform=Platform,
            reports_dir=tmp_path,
            llms=EvalLLMs(),
            embedder=embedder,
            extra_systems=extra,
            ragas_sample=0,
        )

    base = run(_good_system)
    assert base.report["comparison"]["previous_run"] is None and not base.regression
    # Already ingested: the second run's scan finds nothing to do and embeds nothing.
    assert base.report["ingest"]["unchanged"] == len(DOCS)
    assert base.report["ingest"]["chunks_embedded"] == 0
    equal = run(_good_system)
    assert equal.report["comparison"]["previous_run"] == base.run_dir.name
    assert not equal.regression and equal.report["comparison"]["regressions"] == []
    assert len(equal.report["history"]) == 2
    worse = run(_worse_system)
    assert worse.regression
    flagged = {(d["section"], d["metric"]) for d in worse.report["comparison"]["regressions"]}
    assert ("retrieval/reversed", "ndcg@10") in flagged
    assert not any(s.startswith("retrieval/hybrid") for s, _ in flagged)  # unchanged system
    ndcg = next(d for d in worse.report["comparison"]["regressions"] if d["metric"] == "ndcg@10")
    assert ndcg["previous"] == pytest.approx(1.0) and ndcg["worse"][0]["current"] < 1.0
    html = (worse.run_dir / "report.html").read_text()
    assert "REGRESSION" in html and "retrieval/reversed" in html


def test_ragas_answers_from_the_first_mode_asked_and_says_so(
    settings: Settings, tiny: Path, embedder: Embedder, tmp_path: Path
) -> None:
    """With `graph,bm25`, RAGAS answers each golden item from the graph search's contexts, not
    hybrid's, and the report names the mode: in report.json, its page, its comparisons and its
    trend."""
    outcome = run_eval(
        settings,
        tiny,
        platform=Platform,
        reports_dir=tmp_path,
        llms=EvalLLMs(),
        embedder=embedder,
        modes=["graph", "bm25"],
    )
    g = outcome.report["ragas"]
    ws = EvalWorkspace.for_dataset(settings, "tiny")
    with ws.open_runtime(embedder) as runtime, closing(Platform(runtime)) as platform:
        searches = service_systems(
            platform.search, ws.scope, ["graph", "hybrid"], settings.eval.context_k
        )
        expected = {
            mode: {i["id"]: [c.id for c in search(i["question"])] for i in g["items"]}
            for mode, search in searches.items()
        }
    assert expected["graph"] != expected["hybrid"]  # so the test tells the two apart
    assert {i["id"]: [c["chunk_id"] for c in i["contexts"]] for i in g["items"]} == expected[
        "graph"
    ]
    assert g["mode"] == "graph" and list(outcome.report["retrieval"]) == ["graph", "bm25"]
    assert "RAGAS of the graph search's contexts" in (outcome.run_dir / "report.html").read_text()
    assert set(sections(outcome.report)) == {"retrieval/graph", "retrieval/bm25", "ragas/graph"}
    trend = outcome.report["history"][-1]["ragas"]
    assert trend and all(metric.endswith(" (graph)") for metric in trend)


def test_a_document_that_failed_once_counts_as_failed_in_every_report(
    cli_env: None, tmp_path: Path
) -> None:
    """Two empty documents fail on the first run and are settled (not read again) on the next:
    report.json counts them failed on both, as the printed summary lists them."""
    data = write_tiny_beir(tmp_path / "tiny-empties")
    with (data / "corpus.jsonl").open("a") as f:
        for doc_id in ("empty1", "empty2"):
            f.write(json.dumps({"_id": doc_id, "title": "", "text": ""}) + "\n")
    args = ["--dataset", str(data), "--reports-dir", str(tmp_path / "r"), "--ragas-sample", "0"]
    for run in range(2):
        result = CliRunner().invoke(eval_app, [*args, "--modes", "bm25"])
        assert result.exit_code == 0, result.output
        assert "2 document(s) failed to ingest" in result.output
        assert "empty1: " in result.output and "empty2: " in result.output
        reports = sorted((tmp_path / "r").glob("*/report.json"))
        ingest = json.loads(reports[-1].read_text())["ingest"]
        assert ingest["failed"] == len(ingest["failed_documents"]) == 2
        assert ingest["added" if run == 0 else "unchanged"] == len(DOCS)


PLANTS_REF = "Plants convert sunlight, water and carbon dioxide into glucose."
JAZZ_REF = "Jazz music originated in New Orleans."


def test_golden_set_with_stub_llms(
    settings: Settings, tiny: Path, embedder: Embedder, tmp_path: Path
) -> None:
    golden = tmp_path / "golden.jsonl"
    rows = [
        ("g1", "How do plants make glucose from sunlight?", PLANTS_REF, "d1", "how"),
        ("g2", "Where did jazz music originate?", JAZZ_REF, "d11", "where"),
    ]
    save_golden(
        [
            GoldenItem(id=i, question=q, reference=r, relevant_doc_ids=[d], tags={"kind": k})
            for i, q, r, d, k in rows
        ],
        golden,
    )
    llms = EvalLLMs(StubAnswerer(), StubJudge(), identity="stub")
    outcome = run_eval(
        settings,
        tiny,
        platform=Platform,
        golden_path=golden,
        reports_dir=tmp_path / "r",
        llms=llms,
        embedder=embedder,
    )
    g = outcome.report["ragas"]
    assert g["llm_metrics"] and g["notes"] == [] and g["errors"] == 0
    assert g["per_item"]["faithfulness"] == {"g1": 1.0, "g2": 0.0}  # g2's answer is fabricated
    assert g["per_item"]["context_recall"]["g1"] == 1.0
    kinds = {r["value"] for r in outcome.report["slices"]["RAGAS"] if r["tag"] == "kind"}
    assert kinds == {"how", "where"}
    assert "LLM judge" in (outcome.run_dir / "report.html").read_text()


@pytest.fixture
def cli_env(
    settings: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The CLI reads settings from the environment; the module's model is shared with it."""
    monkeypatch.setenv("RAG_DATA_DIR", str(settings.data_dir))
    monkeypatch.delenv("RAG_LLM_BASE_URL", raising=False)
    monkeypatch.setattr(
        EvalWorkspace, "open_runtime", lambda self, embedder_=None: Runtime(self.settings, embedder)
    )
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_cli_exit_codes(cli_env: None, first: EvalOutcome, tiny: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(eval_app, ["--dataset", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a BEIR-format folder" in " ".join(missing.output.split())
    # A previous run that scored better everywhere: this run regresses, the CLI exits 1.
    better = json.loads((first.run_dir / "report.json").read_text())
    for run in better["retrieval"].values():
        for values in run["per_query"].values():
            values.update(dict.fromkeys(values, 1.0))
    (tmp_path / "20000101T000000Z").mkdir()
    (tmp_path / "20000101T000000Z" / "report.json").write_text(json.dumps(better))
    args = ["--dataset", str(tiny), "--reports-dir", str(tmp_path), "--ragas-sample", "0"]
    regressed = runner.invoke(eval_app, args)
    assert regressed.exit_code == 1, regressed.output
    assert "regression: retrieval/" in regressed.output
    same = runner.invoke(eval_app, args)  # against the run just made: equal, exit 0
    assert same.exit_code == 0, same.output


def test_cli_modes_progress_and_failed_documents(
    cli_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--modes` picks the SearchService modes (graph included); progress lines appear although
    the output is not a terminal; a document too large to ingest is named in the summary."""
    data = write_tiny_beir(tmp_path / "tiny2")
    with (data / "corpus.jsonl").open("a") as f:
        f.write(json.dumps({"_id": "big", "title": "Big", "text": "word " * 200}) + "\n")
    monkeypatch.setenv("RAG_MAX_FILE_BYTES", "400")
    get_settings.cache_clear()
    args = ["--dataset", str(data), "--reports-dir", str(tmp_path / "r"), "--ragas-sample", "0"]
    result = CliRunner().invoke(eval_app, [*args, "--modes", "hybrid,graph"])
    assert result.exit_code == 0, result.output
    assert f"ingest: {len(DOCS) + 1}/{len(DOCS) + 1} documents" in result.output
    assert f"graph: {len(QUERIES)}/{len(QUERIES)} queries" in result.output
    assert "1 document(s) failed to ingest" in result.output and "big: " in result.output
    [report] = [json.loads(p.read_text()) for p in (tmp_path / "r").glob("*/report.json")]
    assert list(report["retrieval"]) == ["hybrid", "graph"]
    assert "recall@2" in report["retrieval"]["hybrid"]["means"]
    assert CliRunner().invoke(eval_app, [*args, "--modes", "hybrid,fuzzy"]).exit_code == 2


def test_api_serves_the_latest_report(first: EvalOutcome, tmp_path: Path) -> None:
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=1)
    app.include_router(evaluation.router)
    app.dependency_overrides[require_operator] = lambda: None
    app.state.runtime = SimpleNamespace(settings=Settings(eval_reports_dir=first.run_dir.parent))
    client = TestClient(app)
    latest = client.get("/v1/eval/latest")
    assert latest.status_code == 200 and latest.json()["run_id"] == first.run_dir.name
    page = client.get("/v1/eval/latest", params={"format": "html"})
    assert page.headers["content-type"].startswith("text/html") and "<img" in page.text
    assert client.get("/v1/eval/latest", params={"format": "pdf"}).status_code == 422
    app.state.runtime = SimpleNamespace(settings=Settings(eval_reports_dir=tmp_path))
    empty = client.get("/v1/eval/latest")
    assert empty.status_code == 404
    assert empty.json() == {
        "error": {"code": "no_report", "reason": "no finished benchmark evaluation yet"}
    }


def test_chunk_hits_map_to_documents_at_their_first_rank(settings: Settings) -> None:
    ws = EvalWorkspace.for_dataset(settings, "tiny")
    assert ws.doc_id(ws.key("a/b")) == "a/b" and ws.doc_id(ws.key(".hidden")) == ".hidden"
    assert not ws.key(".hidden").rsplit("/", 1)[1].startswith(".")
    assert ws.doc_id("tenants/other/d1.txt") is None

    def hit(key: str, text: str) -> Hit:
        return Hit(id=text, score=0.0, payload={"doc_id": key, "text": text})

    hits = [
        hit(ws.key("d2"), "d2 first chunk"),
        hit(ws.key("d1"), "d1 chunk"),
        hit("tenants/other/x.txt", "not an evaluation document"),
        hit(ws.key("d2"), "d2 second chunk"),
    ]
    assert to_documents(hits, ws.doc_id) == [
        Retrieved("d2", "d2 first chunk"),
        Retrieved("d1", "d1 chunk"),
    ]
    assert to_documents(["d3", "d1", "d3"], ws.doc_id) == [Retrieved("d3"), Retrieved("d1")]


def test_nightly_resumes_an_unfinished_run(
    cli_env: None, settings: Settings, tiny: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="RAG_EVAL_DATASET"):
        run_nightly(settings, Platform)
    nightly = settings.updated(eval_dataset=tiny, eval_reports_dir=tmp_path)
    crashed = tmp_path / "20000101T000000Z"
    crashed.mkdir()
    (crashed / "run.json").write_text(json.dumps({"dataset": "tiny", "started_at": 0}))
    assert run_nightly(nightly, Platform) == crashed
    assert json.loads((crashed / "report.json").read_text())["run_id"] == crashed.name
    # Finished now: the next night starts a new run, and compares with this one.
    following = run_nightly(nightly, Platform)
    assert following != crashed
    report = json.loads((following / "report.json").read_text())
    assert report["comparison"]["previous_run"] == crashed.name
    assert report["ragas"]["from_cache"] == 0  # a new run folder has its own item cache
