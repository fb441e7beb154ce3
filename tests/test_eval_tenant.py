"""A tenant's evaluation on the served index, through the real app on a real two-tenant corpus.

STUB: the answer LLM and the judge are a loopback OpenAI-compatible server (`_StubLlm`, built on
`tests.support.ragas.FakeOpenAI`), a stand-in for a remote LLM, which cannot run here; it
answers from the sources it is sent and judges by word overlap, and fails on "outage".
Everything else is real: the index, MiniLM, the API, the golden store, RAGAS's metric code.
Tests run in file order on one app.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app as cli_app
from core.embedding import Embedder
from core.settings import get_settings
from eval.evaluation_store import EvaluationStore
from eval.golden import GoldenItem
from eval.golden_store import generate_candidates
from eval.screenshot import find_chromium, screenshot
from eval.tenant import RunConfig
from ingest.bucket import LocalBucket
from serving.evaluation import evaluate_every_tenant, evaluate_tenant
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, ApiEnv, prepare_runtime
from tests.support.golden import save_golden
from tests.support.ragas import FakeOpenAI
from workers.beat import beat_schedule

OPERATOR = {"X-API-Key": ADMIN_KEY}

GOLDEN = [
    ("g-fox", "When do vulpine animals look for prey?", "tenants/acme/fox.txt"),
    ("g-leave", "How much time off does staff get each year?", "tenants/acme/shared/handbook.md"),
    ("g-revenue", "By how much did income rise last quarter?", "tenants/acme/report.pdf"),
    ("g-coffee", "How long should a French press steep?", "tenants/acme/notes.html"),
    ("g-badge", "What if my identification card goes missing?", "tenants/acme/shared/handbook.md"),
    ("g-outage", "Is there an outage of the power plant?", "tenants/acme/report.pdf"),
]


class _StubLlm(FakeOpenAI):
    """STUB server (see the module docstring); a 500 for any prompt that mentions "outage"."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        if b"outage" in body and b"BEGIN SOURCE" in body:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.rfile = io.BytesIO(body)
        super().do_POST()


@pytest.fixture(scope="module")
def llm_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubLlm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tenant-eval")


@pytest.fixture(scope="module")
def env(tmp: Path, embedder: Embedder, llm_url: str) -> Iterator[ApiEnv]:
    runtime, keys = prepare_runtime(
        tmp,
        embedder,
        llm_base_url=llm_url,
        llm_model="stub-answer",
        eval_judge_model="stub-judge",
        eval_reports_dir=tmp / "reports",
        eval_context_k=3,
    )
    platform = Platform(runtime)
    with TestClient(create_app(platform)) as client:
        yield ApiEnv(client, platform, keys)


@pytest.fixture
def cli(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp / "data"))
    monkeypatch.setenv("RAG_EVAL_REPORTS_DIR", str(tmp / "reports"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _get(env: ApiEnv, path: str, key: str, role: str = "reader", **params: Any) -> Any:
    """GET as `key`'s tenant reader (or admin) key; `params` may name another tenant."""
    return env.client.get(path, headers=env.auth(key, role), params=params)


def test_golden_set_is_imported_with_the_cli_and_scoped_per_tenant(
    env: ApiEnv, cli: CliRunner, tmp: Path
) -> None:
    path = tmp / "golden.jsonl"
    save_golden([GoldenItem(id=i, question=q, relevant_doc_ids=[d]) for i, q, d in GOLDEN], path)
    result = cli.invoke(cli_app, ["golden", "import", "--tenant", "acme", str(path)])
    assert result.exit_code == 0, result.output
    assert len(_get(env, "/v1/golden", "acme").json()["items"]) == len(GOLDEN)
    assert _get(env, "/v1/golden", "globex").json()["items"] == []
    for role in ("reader", "admin"):  # another tenant's keys, admin too (tests/test_authorization)
        denied = _get(env, "/v1/golden", "globex", role, tenant="acme")
        assert denied.status_code == 403 and denied.json()["error"]["field"] == "tenant"
    as_operator = env.client.get("/v1/golden", params={"tenant": "acme"}, headers=OPERATOR)
    assert len(as_operator.json()["items"]) == len(GOLDEN)
    fox = {"reference": "Red foxes hunt small rodents at dawn."}
    admin = env.auth("acme", "admin")
    # A reader reads its tenant's golden set; changing it is an admin's.
    for method, path, kwargs in (
        ("PATCH", "/v1/golden/g-fox", {"json": fox}),
        ("DELETE", "/v1/golden/g-fox", {}),
        ("POST", "/v1/golden/import", {"content": b'{"id": "x", "question": "q"}\n'}),
    ):
        refused = env.client.request(method, path, headers=env.auth("acme"), **kwargs)
        assert refused.status_code == 403, (method, path, refused.text)
    edit = env.client.patch("/v1/golden/g-fox", json=fox, headers=admin)
    assert edit.status_code == 200 and edit.json()["reference"].startswith("Red foxes")
    missing = env.client.patch("/v1/golden/nope", json={}, headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "item_not_found"
    bad = env.client.post("/v1/golden/import", content=b'{"id": "x"}\n', headers=admin)
    assert bad.status_code == 422 and "body:1" in bad.json()["error"]["reason"]
    assert len(_get(env, "/v1/golden", "acme").json()["items"]) == len(GOLDEN)
    exported = cli.invoke(cli_app, ["golden", "export", "--tenant", "acme"])
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()] == sorted(
        i for i, _, _ in GOLDEN
    )


def test_golden_lines_end_at_newline_only_in_the_api_and_the_cli(
    env: ApiEnv, cli: CliRunner, tmp: Path
) -> None:
    """U+2028, U+2029 and U+0085 are valid inside a JSON string; `str.splitlines` broke the API's
    import there while the CLI read the same file whole."""
    question = "Which line\u2028separator, paragraph\u2029separator or next\x85line is it?"
    items = [{"id": f"g-sep-{n}", "question": question, "review": "pending"} for n in (1, 2)]
    jsonl = "".join(json.dumps(i, ensure_ascii=False) + "\r\n" for i in items).encode()
    admin = env.auth("globex", "admin")
    r = env.client.post("/v1/golden/import", content=jsonl, headers=admin)
    assert r.status_code == 200 and r.json()["imported"] == 2, r.text
    path = tmp / "separators.jsonl"
    path.write_bytes(jsonl)
    result = cli.invoke(cli_app, ["golden", "import", "--tenant", "globex", str(path)])
    assert result.exit_code == 0 and "imported 2" in result.output, result.output
    listed = _get(env, "/v1/golden", "globex", review="pending").json()["items"]
    assert [i["question"] for i in listed] == [question, question]
    not_utf8 = jsonl + b'{"id": "\xff"}\n'
    r = env.client.post("/v1/golden/import", content=not_utf8, headers=admin)
    assert r.status_code == 422 and "body:3: not UTF-8" in r.json()["error"]["reason"]
    path.write_bytes(not_utf8)
    result = cli.invoke(cli_app, ["golden", "import", "--tenant", "globex", str(path)])
    assert result.exit_code == 2 and f"{path}:3: not UTF-8" in result.output
    for item in items:
        deleted = env.client.delete(f"/v1/golden/{item['id']}", headers=admin)
        assert deleted.status_code == 204


def test_golden_ids_holding_a_slash_are_managed_on_every_route(env: ApiEnv, cli: CliRunner) -> None:
    """Import took {"id": "dir/item"}, but PATCH and DELETE /v1/golden/dir%2Fitem were 404."""
    ids = ["dir/item", "dir/sub/item", "a\nb/c"]
    items = [{"id": i, "question": "Q?", "review": "pending"} for i in ids]
    admin = env.auth("globex", "admin")
    jsonl = "".join(json.dumps(i) + "\n" for i in items)
    assert env.client.post("/v1/golden/import", content=jsonl, headers=admin).status_code == 200
    approve = ["golden", "approve", "--tenant", "globex", "dir/item"]
    assert cli.invoke(cli_app, approve).exit_code == 0
    for item_id in ids:
        for path in (f"/v1/golden/{quote(item_id, safe='')}", f"/v1/golden/{quote(item_id)}"):
            edited = env.client.patch(path, json={"question": f"{path}?"}, headers=admin)
            assert edited.status_code == 200 and edited.json()["id"] == item_id, edited.text
        deleted = env.client.delete(f"/v1/golden/{quote(item_id, safe='')}", headers=admin)
        assert deleted.status_code == 204
        again = env.client.delete(f"/v1/golden/{quote(item_id)}", headers=admin)
        assert again.status_code == 404 and again.json()["error"]["code"] == "item_not_found"
    assert _get(env, "/v1/golden", "globex").json()["items"] == []


def test_candidates_are_generated_from_the_tenants_own_chunks(env: ApiEnv) -> None:
    async def writer(passage: str) -> tuple[str, str]:
        """STUB question writer (stands in for the LLM): fails on one passage."""
        if "Ishmael" in passage or "Coffee" in passage:
            raise ValueError("no question")
        return f"What does this say: {passage[:30]}?", passage

    items = generate_candidates(env.runtime.index, "globex", 50, writer, 2, 10.0)
    globex_docs = {d for d in env.runtime.manifest.current("globex")}
    assert items and all(i.review == "pending" for i in items)
    assert {d for i in items for d in i.relevant_doc_ids} <= globex_docs


@pytest.fixture(scope="module")
def hybrid_run(env: ApiEnv) -> Any:
    return evaluate_tenant(env.platform, "acme")


def test_report_hits_are_what_the_search_api_returns(env: ApiEnv, hybrid_run: Any) -> None:
    report = hybrid_run.report
    search = {"mode": "hybrid", "rerank": False, "filters": [], "top_k": 3, "ranking_depth": 50}
    assert report["search"] == search
    assert {r["id"] for r in report["items"]} == {i for i, _, _ in GOLDEN}
    acme_chunks = env.chunk_ids("acme")
    for row in report["items"]:
        body = {"query": row["question"], "top_k": 3, "mode": "hybrid"}
        served = env.client.post("/v1/search", json=body, headers=env.auth("acme")).json()
        assert [h["id"] for h in row["hits"]] == [h["id"] for h in served["results"]]
        assert {h["id"] for h in row["hits"]} <= acme_chunks
        # The retrieval metrics rank what a search 50 deep serves, document by document.
        deep = env.client.post("/v1/search", json={**body, "top_k": 50}, headers=env.auth("acme"))
        documents = list(dict.fromkeys(h["doc_id"] for h in deep.json()["results"]))
        assert row["ranked_doc_ids"] == documents


def test_ragas_with_the_judge_and_a_failed_item(hybrid_run: Any) -> None:
    report = hybrid_run.report
    ragas = report["ragas"]
    assert ragas["llm_metrics"] and ragas["notes"] == []
    assert "faithfulness" in ragas["means"] and "id_context_recall" in ragas["means"]
    assert set(report["retrieval"]["served"]["means"]) >= {"ndcg@10", "recall@5"}
    outage = report["items"][0]  # worst first: the failed item leads
    assert outage["id"] == "g-outage" and "LlmError" in outage["error"]
    assert ragas["errors"] == 1
    fox = next(r for r in report["items"] if r["id"] == "g-fox")
    assert fox["answer"] and "faithfulness" in fox["scores"]
    assert report["config"]["prompt_digest"] and report["config"]["digest"]


def test_runs_are_served_per_tenant_with_the_error_shape(env: ApiEnv, hybrid_run: Any) -> None:
    run_id = hybrid_run.run_id
    listed = _get(env, "/v1/eval/runs", "acme").json()
    assert [r["run_id"] for r in listed["runs"]] == [run_id]
    assert _get(env, "/v1/eval/runs", "globex").json()["runs"] == []
    assert _get(env, f"/v1/eval/runs/{run_id}", "acme").json()["run_id"] == run_id
    other = _get(env, f"/v1/eval/runs/{run_id}", "globex")
    assert other.status_code == 404 and other.json()["error"]["code"] == "run_not_found"
    assert _get(env, f"/v1/eval/runs/{run_id}", "globex", tenant="acme").status_code == 403
    page = _get(env, f"/v1/eval/runs/{run_id}", "acme", format="html")
    assert page.headers["content-type"].startswith("text/html") and "g-fox" in page.text


def test_a_signed_link_opens_the_page_without_a_key(env: ApiEnv, hybrid_run: Any) -> None:
    run_id = hybrid_run.run_id
    made = env.client.post(f"/v1/eval/runs/{run_id}/link", headers=env.auth("acme"))
    assert made.status_code == 200
    url = urlsplit(made.json()["url"])
    opened = env.client.get(f"{url.path}?{url.query}")
    assert opened.status_code == 200 and "g-fox" in opened.text
    forged = env.client.get(f"{url.path.replace('acme', 'globex')}?{url.query}")
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "link_invalid"
    expires = int(parse_qs(url.query)["expires"][0])
    unsigned = hmac.new(b"", f"acme\n{run_id}\n{expires}".encode(), hashlib.sha256).hexdigest()
    for sig in ("é" * 64, "\u2028", "not hex", unsigned, ""):  # non-ASCII was a 500
        bad = env.client.get(url.path, params={"expires": expires, "sig": sig})
        assert bad.status_code == 403 and bad.json()["error"]["code"] == "link_invalid", sig


def test_bm25_only_is_flagged_until_a_new_baseline_is_accepted(
    env: ApiEnv, hybrid_run: Any, cli: CliRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="eval.tenant"):
        worse = evaluate_tenant(env.platform, "acme", config=RunConfig("bm25"))
    assert worse.regression
    assert worse.report["comparison"]["previous_run"] == hybrid_run.run_id
    assert "evaluation regression for tenant acme" in caplog.text
    metrics = env.client.get("/metrics", headers=OPERATOR).text
    assert 'rag_eval_regression{metric="retrieval/served/recall@5",tenant="acme"} 1.0' in metrics
    again = evaluate_tenant(env.platform, "acme", config=RunConfig("bm25"))
    assert again.regression  # still flagged: the baseline did not move
    accept = ["eval", "baseline", "accept", again.run_id, "--tenant", "acme"]
    assert cli.invoke(cli_app, accept).exit_code == 0
    accepted = evaluate_tenant(env.platform, "acme", config=RunConfig("bm25"))
    assert not accepted.regression


def test_replacing_a_document_changes_the_next_runs_contexts(
    env: ApiEnv, hybrid_run: Any, tmp: Path
) -> None:
    def fox_texts(report: dict[str, Any]) -> list[str]:
        row = next(r for r in report["items"] if r["id"] == "g-fox")
        return [c["text"] for c in row["contexts"]]

    before = fox_texts(hybrid_run.report)
    (tmp / "bucket" / "tenants/acme/fox.txt").write_text(
        "Vulpine animals such as foxes look for prey at night, listening for mice under snow.\n"
    )
    assert env.platform.ingestion_of(LocalBucket(tmp / "bucket")).run().modified == 1
    after = fox_texts(evaluate_tenant(env.platform, "acme").report)
    assert after != before and any("listening for mice" in t for t in after)


def test_the_nightly_task_runs_every_tenant_with_a_golden_set(env: ApiEnv, tmp: Path) -> None:
    schedule = beat_schedule(env.runtime.settings)
    assert schedule["nightly-tenant-eval"]["task"] == "rag.eval.tenants"
    done = evaluate_every_tenant(env.platform)
    assert list(done) == ["acme"]
    assert _get(env, f"/v1/eval/runs/{done['acme']}", "acme").json()["run_id"] == done["acme"]


@pytest.mark.skipif(find_chromium() is None, reason="needs Chromium")
def test_report_page_with_its_history_renders_in_chromium(env: ApiEnv, tmp: Path) -> None:
    latest = _get(env, "/v1/eval/runs", "acme").json()["runs"][0]["run_id"]
    html = tmp / "report.html"
    html.write_text(_get(env, f"/v1/eval/runs/{latest}", "acme", format="html").text)
    assert 'alt="ragas trend"' in html.read_text()
    png = screenshot(html, tmp / "report.png", height=1600)
    assert png.stat().st_size > 20_000


def test_a_run_cut_short_resumes_without_paying_for_finished_items(env: ApiEnv) -> None:
    store = EvaluationStore.open(env.runtime.settings)
    try:
        latest = store.finished_reports("acme")[-1]["run_id"]
        crashed = "20000101T000000Z"  # a run that died after scoring its items
        run = {"status": "running", "started_at": 0.0, "finished_at": None}
        store.adopt([{"tenant": "acme", "run_id": crashed, **run, "report": None, "page": None}])
        for item_id, _, _ in GOLDEN:
            scored = store.items_of("acme", latest).get(item_id)
            if scored is not None:
                store.items_of("acme", crashed).put(item_id, scored)
    finally:
        store.close()
    resumed = evaluate_tenant(env.platform, "acme")
    assert resumed.run_id == crashed
    ragas = resumed.report["ragas"]
    assert ragas["from_cache"] == len(GOLDEN) - 1  # all but the failed item, which is retried
    assert ragas["errors"] == 1


def test_cli_eval_prints_the_run_id_last_and_shows_its_report(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ = prepare_runtime(tmp_path, embedder)
    runtime.close()
    golden = tmp_path / "golden.jsonl"
    save_golden([GoldenItem(id=i, question=q, relevant_doc_ids=[d]) for i, q, d in GOLDEN], golden)
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RAG_EVAL_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("RAG_ADMIN_API_KEY", ADMIN_KEY)
    monkeypatch.setenv("RAG_CHUNK_SIZE", "48")
    monkeypatch.setenv("RAG_CHUNK_OVERLAP", "8")
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        assert (
            runner.invoke(cli_app, ["golden", "import", "--tenant", "acme", str(golden)]).exit_code
            == 0
        )
        result = runner.invoke(cli_app, ["eval", "--tenant", "acme", "--mode", "dense"])
        assert result.exit_code == 0, result.output
        run_id = result.stdout.strip().splitlines()[-1]
        assert f"/v1/eval/shared/acme/{run_id}?" in result.stdout
        shown = runner.invoke(cli_app, ["eval", "show", run_id, "--tenant", "acme"])
        assert shown.exit_code == 0, shown.output
        report = json.loads(shown.stdout)
        assert report["run_id"] == run_id
        assert report["search"]["mode"] == "dense" and not report["ragas"]["llm_metrics"]
        assert any("No judge configured" in n for n in report["ragas"]["notes"])
        page = tmp_path / "page.html"
        saved = runner.invoke(cli_app, ["eval", "show", run_id, "--tenant", "acme", "--html", page])
        assert saved.exit_code == 0 and f"Evaluation {run_id}" in page.read_text(), saved.output
        for unknown in (["20000101T000000Z", "--tenant", "acme"], [run_id, "--tenant", "globex"]):
            missing = runner.invoke(cli_app, ["eval", "show", *unknown])
            assert missing.exit_code == 2 and "has no finished run" in missing.output
        as_json = runner.invoke(cli_app, ["eval", "--tenant", "acme", "--mode", "dense", "--json"])
        assert as_json.exit_code == 0, as_json.output
        out = json.loads(as_json.stdout)
        assert out["run_id"] != run_id and out["report"]["run_id"] == out["run_id"]
        assert out["tenant"] == "acme" and out["report"]["search"]["mode"] == "dense"
        elsewhere = ["eval", "--tenant", "acme", "--reports-dir", str(tmp_path / "r")]
        refused = runner.invoke(cli_app, elsewhere)
        assert refused.exit_code == 2 and "state database" in refused.output
        assert not (tmp_path / "reports").exists()  # a tenant's runs are no files
        none = runner.invoke(cli_app, ["eval", "--tenant", "globex"])
        assert none.exit_code == 2 and "no approved golden items" in none.output
    finally:
        get_settings.cache_clear()
