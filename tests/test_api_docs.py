"""The API's docs work offline, and its OpenAPI spec declares the error bodies it really sends.

Real app, real model and index; the LLM is the only stand-in (an httpx transport that fails, as a
remote endpoint can), since no LLM runs here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate as validate_spec
from PIL import Image

from api.app import create_app
from core.embedding import Embedder
from eval.screenshot import find_chromium, screenshot_url
from serving.platform import Platform
from tests.support.api_env import ApiEnv, prepare_runtime
from tests.support.server import serving

MAX_BODY = 4096


def _failing_llm(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"error": "the LLM is down"})


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[ApiEnv]:
    runtime, keys = prepare_runtime(
        tmp_path_factory.mktemp("docs"),
        embedder,
        ingest=False,
        max_body_bytes=MAX_BODY,
        llm_base_url="http://llm.invalid/v1",
        reranker_model="no-such-reranker",  # so reranking is unavailable: a 400
    )
    platform = Platform(runtime, legs=(), http_transport=httpx.MockTransport(_failing_llm))
    with TestClient(create_app(platform)) as client:
        yield ApiEnv(client, platform, keys)


@pytest.fixture(scope="module")
def spec(env: ApiEnv) -> dict[str, Any]:
    return env.client.get("/openapi.json").json()


def test_the_spec_is_valid_and_every_error_is_the_error_model(tmp_path: Path) -> None:
    """On the served app (graph and evaluation routes included): no FastAPI validation model."""
    from tests.support.settings import make_settings

    full = create_app(Platform.open(make_settings(tmp_path))).openapi()
    validate_spec(full)
    assert "HTTPValidationError" not in full["components"]["schemas"]
    for path, operations in full["paths"].items():
        for method, op in operations.items():
            statuses = {int(s) for s in op["responses"] if int(s) >= 400}
            if path != "/healthz":
                assert {401, 503} & statuses, (method, path)
            for status in statuses:
                body = op["responses"][str(status)]["content"]["application/json"]["schema"]
                assert body == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path)


def _check(spec: dict[str, Any], template: str, method: str, response: httpx.Response) -> str:
    """The response's status is declared for the operation and its body fits the declared schema;
    returns the error code."""
    declared = spec["paths"][template][method]["responses"]
    assert str(response.status_code) in declared, (method, template, response.status_code)
    schema = declared[str(response.status_code)]["content"]["application/json"]["schema"]
    jsonschema.validate(response.json(), {**schema, "components": spec["components"]})
    return response.json()["error"]["code"]


def test_real_error_responses_match_the_spec(env: ApiEnv, spec: dict[str, Any]) -> None:
    c, reader, admin = env.client, env.auth("acme"), env.auth("acme", "admin")
    cases = [
        ("/v1/documents", "get", c.get("/v1/documents"), "unauthorized"),
        (
            "/v1/documents/{doc_id}",
            "delete",
            c.delete("/v1/documents/a.txt", headers=reader),
            "forbidden",
        ),
        ("/v1/documents/{doc_id}", "get", c.get("/v1/documents/nope", headers=reader), "not_found"),
        ("/v1/keys/{key_id}", "delete", c.delete("/v1/keys/nope", headers=admin), "not_found"),
        (
            "/v1/search",
            "post",
            c.post("/v1/search", json={"query": "x" * MAX_BODY}, headers=reader),
            "body_too_large",
        ),
        (
            "/v1/search",
            "post",
            c.post("/v1/search", json={"query": "fox", "top_k": 0}, headers=reader),
            "invalid_request",
        ),
        (
            "/v1/search",
            "post",
            c.post(
                "/v1/search",
                content=b"{not json",
                headers={**reader, "Content-Type": "application/json"},
            ),
            "invalid_json",
        ),
        (
            "/v1/search",
            "post",
            c.post(
                "/v1/search",
                content=b'{"query": "fox"}',
                headers={**reader, "Content-Type": "application/x-www-form-urlencoded"},
            ),
            "unsupported_media_type",
        ),
        (
            "/v1/documents",
            "get",
            c.get("/v1/documents", params={"limit": 0}, headers=reader),
            "invalid_request",
        ),
        (
            "/v1/keys",
            "post",
            c.post("/v1/keys", json={"tenant": "../etc"}, headers=admin),
            "invalid_tenant",
        ),
        (
            "/v1/keys",
            "post",
            c.post("/v1/keys", json={"label": "ops\x00\n[/]"}, headers=admin),
            "invalid_label",
        ),
        (
            "/v1/search",
            "post",
            c.post("/v1/search", json={"query": "fox", "rerank": True}, headers=reader),
            "reranker_unavailable",
        ),
        (
            "/v1/answer",
            "post",
            c.post("/v1/answer", json={"query": "fox"}, headers=reader),
            "llm_failed",
        ),
    ]
    for template, method, response, code in cases:
        assert _check(spec, template, method, response) == code, response.json()


def test_a_shed_request_matches_the_spec(
    tmp_path: Path, embedder: Embedder, spec: dict[str, Any]
) -> None:
    runtime, keys = prepare_runtime(tmp_path, embedder, ingest=False, api_max_inflight=0)
    with TestClient(create_app(Platform(runtime))) as client:
        shed = client.post(
            "/v1/search", json={"query": "fox"}, headers={"X-API-Key": keys["acme:reader"]}
        )
    assert shed.status_code == 503 and shed.headers["Retry-After"]
    assert _check(spec, "/v1/search", "post", shed) == "overloaded"


def test_docs_pages_load_their_assets_from_this_server(env: ApiEnv) -> None:
    for page in ("/docs", "/redoc"):
        html = env.client.get(page).text
        assert "cdn." not in html and "https://" not in html, page
        scripts = [part.split('"')[0] for part in html.split('src="')[1:]]
        assert scripts, page
        for src in scripts:
            asset = env.client.get(src)
            assert asset.status_code == 200 and len(asset.content) > 100_000, src


# Swagger UI's colours for GET and POST operations; a blank page has neither.
GET_BLUE, POST_GREEN = (97, 175, 254), (73, 204, 144)


def _pixels_near(image: Image.Image, colour: tuple[int, int, int]) -> int:
    return sum(
        count
        for count, (r, g, b) in image.getcolors(maxcolors=1 << 24) or []
        if abs(r - colour[0]) + abs(g - colour[1]) + abs(b - colour[2]) < 30
    )


def test_docs_render_in_chromium_with_no_network(tmp_path: Path, embedder: Embedder) -> None:
    """A real server on loopback and headless Chromium whose every other host fails to resolve:
    with the assets from a CDN the page stayed blank; now Swagger UI draws every operation."""
    if find_chromium() is None:
        pytest.fail("no Chromium: `apt-get install -y chromium` (make test installs it)")
    runtime, _ = prepare_runtime(tmp_path, embedder, ingest=False)
    with serving(create_app(Platform(runtime)), runtime.settings.api) as url:
        png = screenshot_url(
            f"{url}/docs",
            tmp_path / "docs.png",
            height=1600,
            extra_flags=(
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--virtual-time-budget=20000",
            ),
        )
    image = Image.open(png).convert("RGB")
    assert _pixels_near(image, GET_BLUE) > 1000 and _pixels_near(image, POST_GREEN) > 1000
