"""Text PostgreSQL cannot store (a NUL character) sent to any route is the client's error, said
as one: never a 500. SQLite stores it, so a platform moved to PostgreSQL must not start failing
where it answered before.

Every route of the OpenAPI spec that takes a path parameter is called with a NUL in it, and the
routes that store text are sent a NUL in their bodies, with the operator's key (which may act on
any tenant) against the suite's own PostgreSQL.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from core.embedding import Embedder
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, prepare_runtime
from tests.support.services import postgres_url

NUL = "a\x00b"


def test_a_nul_anywhere_is_a_4xx_with_a_reason_on_postgresql(
    tmp_path: Path, embedder: Embedder
) -> None:
    url = postgres_url(f"state_text_{uuid.uuid4().hex[:12]}")
    runtime, _ = prepare_runtime(tmp_path, embedder, ingest=False, state={"url": url})
    operator = {"X-API-Key": ADMIN_KEY}
    with TestClient(create_app(Platform(runtime))) as client:
        spec = client.get("/openapi.json").json()
        called = []
        for path, methods in spec["paths"].items():
            if "{" not in path:
                continue
            concrete = re.sub(r"\{[^}]+\}", "a%00b", path)
            for method in methods:
                answer = client.request(
                    method.upper(),
                    concrete,
                    params={"tenant": "acme"},
                    headers=operator,
                    json={} if method in ("post", "put", "patch") else None,
                )
                called.append((method, path))
                assert answer.status_code < 500, (method, path, answer.text)
                assert answer.json()["error"]["reason"], (method, path)
        assert len(called) >= 5, called

        item = {"id": "q1", "question": f"what is {NUL}?", "answers": ["x"]}
        imported = client.post(
            "/v1/golden/import",
            params={"tenant": "acme"},
            headers={**operator, "Content-Type": "application/x-ndjson"},
            content=__import__("json").dumps(item),
        )
        assert imported.status_code < 500, imported.text
        label = client.post("/v1/keys", headers=operator, json={"tenant": "acme", "label": NUL})
        assert label.status_code < 500, label.text
