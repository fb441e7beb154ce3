"""The outside probe of issue 13, re-run against a real `rag up` process.

One `rag up` (API, worker pool, beat and watcher in one process) serves the whole module over two
tenants; each finding of the probe is one test function that attacks it as the probe did, over
loopback HTTP or through the bucket, and checks the platform now holds. Findings checked in other
files (or by other branches) are added here as functions of their own on the same fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.rag_up import RagUp
from tests.support.services import redis_url

pytestmark = pytest.mark.slow

FILES = {
    "tenants/acme/fox.txt": "The quick brown fox jumps over the lazy dog near the river bank.",
    "tenants/acme/solar.txt": "Quarterly revenue grew by twelve percent thanks to solar panels.",
    "tenants/globex/whale.txt": "Call me Ishmael. The whale surfaced beside the ship at dawn.",
}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagUp]:
    platform = RagUp(tmp_path_factory.mktemp("probe"), redis_url(13))
    try:
        yield platform.start(FILES)
    finally:
        platform.stop()


def _post_raw(up: RagUp, body: str, tenant: str = "acme") -> httpx.Response:
    """A body sent as written: JSON escapes such as \\ud800 reach the server's parser as such."""
    headers = {**up.auth(tenant), "Content-Type": "application/json"}
    return httpx.post(f"{up.url}/v1/search", content=body.encode(), headers=headers, timeout=30)


# --------------------------------------------------------------------------- finding 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"query": "fox", "filters": [{"field": "doc_id", "eq": "\\ud800"}]}', "doc_id"),
        ('{"query": "fox", "filters": [{"field": "author", "any": ["a", "\\udfff"]}]}', "author"),
        ('{"query": "fox", "filters": [{"field": "meta.\\ud800", "eq": "x"}]}', "meta.\\ud800"),
        (
            '{"query": "fox", "filters": [{"field": "modified_at", "gte": "\\ud800"}]}',
            "modified_at",
        ),
        ('{"query": "fox \\ud800"}', "query"),
        (
            '{"query": "fox", "mode": "bm25", "filters": [{"field": "meta.k", "eq": "\\ud83d"}]}',
            "meta.k",
        ),
    ],
)
def test_finding_1_strings_not_encodable_as_utf8_are_422_naming_the_field(
    up: RagUp, body: str, field: str
) -> None:
    r = _post_raw(up, body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field, error
    assert "UTF-8" in error["reason"] or "unicode" in error["reason"], error
    # The server is still whole: the same tenant's next search answers.
    assert _post_raw(up, json.dumps({"query": "fox"})).status_code == 200
