"""`rag search` goes through the served SearchService: its `--json` is the body of
`POST /v1/search` for the same query, and its errors are the API's, on a real ingested index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from core.embedding import Embedder
from core.settings import get_settings
from tests.support.api_env import ADMIN_KEY, prepare_runtime, running_app
from tests.support.models import build_untrained_cross_encoder

QUERIES: list[dict[str, Any]] = [
    {"query": "when do red foxes hunt?", "top_k": 4},
    {"query": "fox den entrances", "top_k": 3, "mode": "bm25"},
    {"query": "paid leave per year", "top_k": 5, "mode": "dense"},
    {
        "query": "foxes",
        "top_k": 5,
        "filters": [{"field": "meta.project", "eq": "apollo"}],
    },
]


def _cli_args(body: dict[str, Any]) -> list[str]:
    args = ["search", body["query"], "--tenant", "acme", "--json", "-k", str(body["top_k"])]
    args += ["--mode", body.get("mode", "hybrid")]
    for condition in body.get("filters", []):
        args += ["--filter", json.dumps(condition)]
    return args


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[tuple]:
    """The API's bodies for QUERIES, then the index closed so the CLI can open it."""
    tmp = tmp_path_factory.mktemp("cli-search")
    runtime, keys = prepare_runtime(tmp, embedder)
    with running_app(runtime, keys) as env:
        bodies = []
        for body in QUERIES:
            r = env.client.post("/v1/search", json=body, headers=env.auth("acme"))
            assert r.status_code == 200, r.text
            bodies.append(r.json())
    env_vars = {
        "RAG_DATA_DIR": str(tmp / "data"),
        "RAG_BUCKET_URL": str(tmp / "bucket"),
        "RAG_CHUNK_SIZE": "48",
        "RAG_CHUNK_OVERLAP": "8",
        "RAG_ADMIN_API_KEY": ADMIN_KEY,
    }
    yield bodies, env_vars


@pytest.fixture
def cli(served: tuple, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    for name, value in served[1].items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _without_timings(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "timings_ms"}


def test_json_output_is_the_api_body(served: tuple, cli: CliRunner) -> None:
    for body, api_body in zip(QUERIES, served[0], strict=True):
        result = cli.invoke(cli_app, _cli_args(body))
        assert result.exit_code == 0, result.output
        printed = json.loads(result.stdout)
        assert set(printed) == set(api_body)
        assert _without_timings(printed) == _without_timings(api_body)
        assert printed["results"], body


def test_errors_are_the_apis(cli: CliRunner) -> None:
    bad_filter = cli.invoke(
        cli_app, ["search", "fox", "--filter", '{"field": "meta.year", "near": 3}']
    )
    assert bad_filter.exit_code == 2 and "invalid_filter (meta.year)" in bad_filter.output
    assert cli.invoke(cli_app, ["search", "fox", "--mode", "fuzzy"]).exit_code == 2
    assert cli.invoke(cli_app, ["search", "fox", "--filter", "{not json"]).exit_code == 2
    rerank = cli.invoke(cli_app, ["search", "fox", "--rerank"])
    assert rerank.exit_code == 2 and "reranker_unavailable (rerank)" in rerank.output
    assert "RAG_RERANKER_MODEL" in rerank.output  # the operator's reason: what to set


def test_graph_mode_uses_the_served_graph_leg(cli: CliRunner) -> None:
    """The CLI's SearchService carries the graph leg the settings turn on (the test app above
    has none), so `--mode graph` answers instead of refusing."""
    result = cli.invoke(
        cli_app, ["search", "Grace Hopper", "--tenant", "acme", "--mode", "graph", "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["mode"] == "graph"
    assert all(r["doc_id"].startswith("tenants/acme/") for r in body["results"])


def test_rerank_with_a_local_cross_encoder_folder(
    cli: CliRunner, embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's way to rerank: RAG_RERANKER_MODEL names a sentence-transformers
    CrossEncoder folder (here one built from the shipped MiniLM, with an untrained head)."""
    folder = build_untrained_cross_encoder(embedder.model_name, tmp_path / "cross-encoder")
    monkeypatch.setenv("RAG_RERANKER_MODEL", str(folder))
    get_settings.cache_clear()
    args = ["search", "red foxes", "--tenant", "acme", "--rerank", "--json", "-k", "3"]
    result = cli.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)["results"]
    assert hits and all(h["rerank_score"] is not None for h in hits)
