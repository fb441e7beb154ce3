"""Rerankers: the local cross-encoder, Cohere over HTTP, and an honest 'unavailable'."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sentence_transformers import CrossEncoder

from core.embedding import Embedder
from core.settings import Settings
from eval.history import EvalRunError
from eval.tenant import RunConfig
from retrieval.rerank import (
    CohereReranker,
    CrossEncoderReranker,
    RerankerError,
    load_reranker,
)
from serving.evaluation import evaluate_tenant
from tests.support.api_env import ApiEnv, prepare_runtime, running_app
from tests.support.models import build_untrained_cross_encoder

MISSING_MODEL = "example-org/no-such-reranker"
TEXTS = [
    "Red foxes hunt small rodents at dawn.",
    "Quarterly revenue grew by twelve percent.",
    "Arctic foxes turn white in winter.",
]
# Recorded from Cohere's v2 rerank endpoint (ids and billing trimmed): results come sorted by
# relevance, each naming the index of the document it scores.
RECORDED = {
    "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
    "results": [
        {"index": 2, "relevance_score": 0.9871},
        {"index": 0, "relevance_score": 0.8123},
        {"index": 1, "relevance_score": 0.0011},
    ],
    "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
}


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    return build_untrained_cross_encoder(embedder.model_name, tmp_path_factory.mktemp("ce"))


def test_cross_encoder_reranker_scores_like_the_model(cross_encoder_dir: Path) -> None:
    reranker = CrossEncoderReranker(str(cross_encoder_dir), batch_size=2)
    scores = reranker.score("which fox hunts at dawn?", TEXTS)
    own = CrossEncoder(str(cross_encoder_dir), device="cpu").predict(
        [("which fox hunts at dawn?", t) for t in TEXTS]
    )
    assert scores == pytest.approx([float(s) for s in own], abs=1e-5)
    assert len(set(scores)) == 3
    assert reranker.score("anything", []) == []


def test_cohere_reranker_replays_a_recorded_response() -> None:
    """Cohere's API cannot be reached here: a fake transport (a mock, marked as such) replays a
    recorded response under the official client and checks the request it sends."""
    seen: list[httpx.Request] = []

    def cohere(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RECORDED)

    reranker = CohereReranker(
        "secret-key",
        "rerank-v3.5",
        "https://api.cohere.com",
        timeout_s=5,
        max_retries=0,
        transport=httpx.MockTransport(cohere),  # mock: Cohere cannot be reached here
    )
    assert reranker.score("fox", TEXTS) == [0.8123, 0.0011, 0.9871]
    request = seen[0]
    assert request.url == "https://api.cohere.com/v2/rerank"
    assert request.headers["authorization"] == "Bearer secret-key"
    assert request.headers["x-client-name"] == "ragplatform"
    assert json.loads(request.content) == {
        "model": "rerank-v3.5",
        "query": "fox",
        "documents": TEXTS,
    }
    reranker.close()


def test_cohere_client_retries_a_rate_limited_request() -> None:
    """The client's own retries: a 429 with Retry-After 0, then the recorded answer (mock
    transport: Cohere cannot be reached here)."""
    replies = [httpx.Response(429, headers={"Retry-After": "0"}, json={"message": "slow"})]

    def cohere(_: httpx.Request) -> httpx.Response:
        return replies.pop(0) if replies else httpx.Response(200, json=RECORDED)

    reranker = CohereReranker(
        "k", "rerank-v3.5", "https://api.cohere.com", 5, 1, httpx.MockTransport(cohere)
    )
    assert reranker.score("fox", TEXTS) == [0.8123, 0.0011, 0.9871]
    assert not replies


@pytest.mark.parametrize(
    ("response", "busy"),
    [
        (httpx.Response(429, json={"message": "rate limited"}), True),
        (httpx.Response(503, json={"message": "overloaded"}), True),
        (httpx.Response(401, json={"message": "invalid api token"}), False),
        (httpx.Response(500, json={"message": "internal"}), False),
        (httpx.Response(200, json={"unexpected": True}), False),
        (httpx.Response(200, content=b"not json"), False),
    ],
)
def test_cohere_failures_raise_reranker_errors(response: httpx.Response, busy: bool) -> None:
    """A fake transport (a mock) stands in for Cohere's API, which cannot be reached here.
    `busy` failures answer 503 (retry later), the others 502."""
    reranker = CohereReranker(
        "k",
        "rerank-v3.5",
        "https://api.cohere.com",
        timeout_s=5,
        max_retries=0,
        transport=httpx.MockTransport(lambda _: response),
    )
    with pytest.raises(RerankerError, match="Cohere rerank failed") as raised:
        reranker.score("fox", TEXTS)
    assert raised.value.busy is busy


def test_an_unreachable_cohere_is_busy() -> None:
    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    reranker = CohereReranker(
        "k", "rerank-v3.5", "https://api.cohere.com", 5, 0, httpx.MockTransport(refused)
    )
    with pytest.raises(RerankerError, match="ConnectError") as raised:
        reranker.score("fox", TEXTS)
    assert raised.value.busy


def test_load_reranker_prefers_cohere_when_a_key_is_set(tmp_path: Path) -> None:
    status = load_reranker(
        Settings(data_dir=tmp_path, cohere_api_key=SecretStr("k"), reranker_model=MISSING_MODEL)
    )
    assert status.available
    assert status.name == "cohere:rerank-v3.5"


def test_load_reranker_reports_why_a_model_is_missing(tmp_path: Path) -> None:
    status = load_reranker(Settings(data_dir=tmp_path, reranker_model=MISSING_MODEL))
    assert not status.available
    assert status.reranker is None
    assert MISSING_MODEL in status.reason
    assert "RAG_RERANKER_MODEL" in status.reason


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[ApiEnv]:
    """An app with an empty index, no loadable reranker and no LLM."""
    runtime, keys = prepare_runtime(
        tmp_path_factory.mktemp("bare"), embedder, ingest=False, reranker_model=MISSING_MODEL
    )
    with running_app(runtime, keys) as env:
        yield env


def test_without_a_reranker_the_api_says_so(bare: ApiEnv) -> None:
    status = bare.client.get("/v1/status", headers=bare.auth("acme")).json()
    assert status["reranker"]["available"] is False
    assert MISSING_MODEL in status["reranker"]["reason"]

    body = {"query": "fox", "rerank": True}
    r = bare.client.post("/v1/search", json=body, headers=bare.auth("acme"))
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["code"], error["field"]) == ("reranker_unavailable", "rerank")
    assert MISSING_MODEL in error["reason"]
    plain = bare.client.post("/v1/search", json={"query": "fox"}, headers=bare.auth("acme"))
    assert plain.status_code == 200
    assert plain.json()["results"] == []


def test_start_up_logs_a_missing_reranker_once(
    tmp_path: Path, embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    """One line at start-up; searches, reranked or not, and the status add none (a reranked
    search says why in its 400)."""
    runtime, keys = prepare_runtime(tmp_path, embedder, ingest=False, reranker_model=MISSING_MODEL)
    with caplog.at_level(logging.INFO), running_app(runtime, keys) as env:
        said = [r for r in caplog.records if "rerank" in r.getMessage()]
        assert len(said) == 1, [r.getMessage() for r in said]
        assert said[0].levelno == logging.WARNING and MISSING_MODEL in said[0].getMessage()
        for body in ({"query": "fox"}, {"query": "fox", "rerank": True}):
            env.client.post("/v1/search", json=body, headers=env.auth("acme"))
        assert env.client.get("/v1/status", headers=env.auth("acme")).status_code == 200
    assert [r for r in caplog.records if "rerank" in r.getMessage()] == said


def test_without_an_llm_answers_are_503(bare: ApiEnv) -> None:
    r = bare.client.post("/v1/answer", json={"query": "fox"}, headers=bare.auth("acme"))
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "llm_unavailable"
    assert "RAG_LLM_BASE_URL" in r.json()["error"]["reason"]


def test_graph_mode_without_a_graph_leg_is_400(bare: ApiEnv) -> None:
    r = bare.client.post(
        "/v1/search", json={"query": "fox", "mode": "graph"}, headers=bare.auth("acme")
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "mode_unavailable"


def test_a_reranked_evaluation_without_a_reranker_is_refused_with_the_reason(bare: ApiEnv) -> None:
    """At once, naming the model and what to set: the run's searches would fail one by one with
    'no reranker is loaded'."""
    with pytest.raises(EvalRunError, match="RAG_RERANKER_MODEL") as refused:
        evaluate_tenant(bare.platform, "acme", config=RunConfig("hybrid", rerank=True))
    assert MISSING_MODEL in str(refused.value)


def test_cohere_key_is_read_from_cohere_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    monkeypatch.delenv("RAG_COHERE_API_KEY", raising=False)
    monkeypatch.setenv("COHERE_API_KEY", "from-cohere-env")
    assert Settings().retrieval.cohere_api_key.get_secret_value() == "from-cohere-env"


def test_the_api_answers_cohere_failures_with_502_or_503_and_the_reason(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Through the served search: a mock transport stands in for Cohere, unreachable here."""
    replies: list[httpx.Response] = []
    runtime, keys = prepare_runtime(
        tmp_path, embedder, cohere_api_key=SecretStr("k"), cohere_max_retries=0
    )
    with running_app(runtime, keys, transport=httpx.MockTransport(lambda _: replies.pop())) as env:
        body = {"query": "fox", "rerank": True}
        replies.append(httpx.Response(200, json={**RECORDED, "results": []}))
        assert env.client.post("/v1/search", json=body, headers=env.auth("acme")).status_code == 200
        for status, code in ((429, "reranker_busy"), (401, "reranker_failed")):
            replies.append(httpx.Response(status, json={"message": "from cohere"}))
            r = env.client.post("/v1/search", json=body, headers=env.auth("acme"))
            assert r.status_code == (503 if status == 429 else 502), r.text
            error = r.json()["error"]
            assert error["code"] == code
            assert f"HTTP {status}" in error["reason"] and "from cohere" in error["reason"]
