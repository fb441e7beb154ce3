"""The served application as `rag serve` and `rag up` build it: API + graph + evaluation routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_key
from core.embedding import Embedder
from core.runtime import Runtime
from ingest.bucket import LocalBucket
from serving.platform import Platform
from tests.support.graph import DOC2, QUESTION, two_hop_corpus
from tests.support.settings import make_settings

ADMIN = "platform-test-admin-key"


def client_for(tmp_path: Path, embedder: Embedder, **settings: object) -> Iterator[TestClient]:
    s = make_settings(tmp_path, chunk_size=40, chunk_overlap=0, admin_api_key=ADMIN, **settings)
    two_hop_corpus(tmp_path / "bucket")
    platform = Platform(Runtime(s, embedder))
    platform.ingestion_of(LocalBucket(tmp_path / "bucket")).run()  # the graph's updater listening
    reader = create_key(s, "acme", "reader")
    with TestClient(create_app(platform)) as client:
        client.headers["X-API-Key"] = reader
        yield client


@pytest.fixture
def client(tmp_path: Path, embedder: Embedder) -> Iterator[TestClient]:
    yield from client_for(tmp_path, embedder)


def search(client: TestClient, mode: str) -> list[dict]:
    body = {"query": QUESTION, "top_k": 3, "mode": mode, "explain": True}
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()["results"]


def test_graph_mode_answers_the_two_hop_question_over_http(client: TestClient) -> None:
    entities = client.get("/v1/graph/entities", params={"q": "Marta Kowalski"}).json()
    assert any("marta" in str(e).lower() for e in entities["entities"])
    assert DOC2 in {r["doc_id"] for r in search(client, "graph")}
    # By default `hybrid` stays with the engine legs (the graph lowered SciFact NDCG@10).
    hybrid = search(client, "hybrid")
    assert all("graph" not in r["leg_ranks"] for r in hybrid)
    assert DOC2 not in {r["doc_id"] for r in hybrid}


def test_hybrid_fuses_the_graph_in_when_configured(tmp_path: Path, embedder: Embedder) -> None:
    for client in client_for(tmp_path, embedder, graph_in_hybrid=True):
        hybrid = search(client, "hybrid")
        assert any("graph" in r["leg_ranks"] for r in hybrid)


def test_evaluation_report_is_for_admins_only(client: TestClient) -> None:
    assert client.get("/v1/eval/latest").status_code == 403
    response = client.get("/v1/eval/latest", headers={"X-API-Key": ADMIN})
    assert response.status_code == 404
