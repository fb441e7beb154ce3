"""Schemathesis over the served app's own OpenAPI document: every route, with bodies, paths and
queries generated from the schema (valid and invalid ones), answers anything but a 500.

The app is the one `rag serve` builds (search, documents, keys, status, metrics, graph and
evaluation routes) over the real two-tenant corpus, ingested through the real pipeline with the
real model and the embedded engine, and every call carries a real key: the operator's, so the
admin routes are reached too. The example count is bounded to keep this to seconds.

The one 5xx the API documents for a request it cannot serve is 503 `llm_unavailable` from
`/v1/answer` (no LLM is configured here); 503 `overloaded` cannot happen one call at a time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from api.app import create_app
from core.embedding import Embedder
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, prepare_runtime

EXAMPLES_PER_ROUTE = 30
_AUTH_HEADERS = ("authorization", "x-api-key")


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator:
    runtime, _ = prepare_runtime(tmp_path_factory.mktemp("fuzz"), embedder)
    app = create_app(Platform(runtime))
    # The golden import's JSONL body is text: generated strings are sent as they are.
    schemathesis.serializer.alias("application/x-ndjson", "text/plain")
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        shutdown_lifespans()  # the app's lifespan: closes the model, the index and the stores


def _check(case: schemathesis.Case) -> None:
    # The schema's security schemes make schemathesis send made-up keys; send the real one.
    generated = case.headers or {}
    case.headers = {k: v for k, v in generated.items() if k.lower() not in _AUTH_HEADERS}
    response = case.call(headers={"X-API-Key": ADMIN_KEY})
    if response.status_code < 500:
        return
    body = response.json() if response.content else {}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    documented = (response.status_code, error.get("code")) == (503, "llm_unavailable")
    assert documented, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: " + (response.text[:500])
    )


def _cases(operation: schemathesis.APIOperation) -> st.SearchStrategy:
    """Requests that fit the schema and requests that break it (wrong types, missing fields)."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    return st.one_of(*(operation.as_strategy(generation_mode=mode) for mode in modes))


def test_no_route_answers_a_server_error(api_schema: schemathesis.BaseSchema) -> None:
    # Hypothesis drives schemathesis' strategies directly: its pytest plugin's lazy schemas do
    # not run under this pytest.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12  # every route of the served app
    for operation in operations:
        run = settings(
            max_examples=EXAMPLES_PER_ROUTE,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(_cases(operation))(_check))
        run()
