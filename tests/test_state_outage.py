"""The state database going away is the platform's trouble, said as such: the API answers 503
with a reason and Retry-After (never 500), and a worker retries the task.

PostgreSQL is the suite's own; the database the API uses is dropped under it (its connections
terminated), as an operator's failover or a network cut would leave it.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from api.app import create_app
from core.embedding import Embedder
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, prepare_runtime
from tests.support.services import postgres_url
from workers.tasks.ingestion import is_transient


def _drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = url.replace("postgresql+psycopg", "postgresql").rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_the_api_answers_503_when_the_state_database_is_gone(
    tmp_path: Path, embedder: Embedder
) -> None:
    url = postgres_url("state_outage")
    runtime, keys = prepare_runtime(tmp_path, embedder, ingest=False, state={"url": url})
    with TestClient(create_app(Platform(runtime))) as client:
        reader = {"X-API-Key": keys["acme:reader"]}
        assert client.get("/v1/status", headers=reader).status_code == 200
        _drop(url)
        for headers in (reader, {"X-API-Key": ADMIN_KEY}, {"X-API-Key": "rag_nope_nope"}):
            answer = client.get("/v1/status", headers=headers)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "state_unavailable"
            assert answer.headers["Retry-After"]
        # The operator key needs no key store: the evaluation store's own reads answer 503 too.
        operator = {"X-API-Key": ADMIN_KEY}
        for path in ("/v1/eval/runs", "/v1/eval/runs/20240101T000000Z"):
            answer = client.get(path, params={"tenant": "acme"}, headers=operator)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "state_unavailable"


def test_a_lost_state_database_is_a_transient_error_for_the_workers() -> None:
    assert is_transient(OperationalError("SELECT 1", {}, ConnectionError("connection lost")))
