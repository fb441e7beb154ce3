"""Limits at the door: past `max_inflight` keyed requests (or a tenant's share of them) a 503 with
Retry-After, never for health checks, and never a slot for a request without a valid key; a body
that does not arrive in time gets 408; and the real app carries both with the configured values.

The shedder is tested on a small Starlette app whose handler waits for a signal, so requests can
be held in flight at will; the tenant of a request is the `x-tenant` header here (the real app
verifies the key, which `tests/test_probe.py` covers against a real `rag up`).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Message, Scope

from api.limits import BodyLimitMiddleware, LoadShedMiddleware


def _header_tenant(scope: Scope) -> str | None:
    return dict(scope["headers"]).get(b"x-tenant", b"").decode() or None


def _app(release: asyncio.Event, max_inflight: int, per_tenant: int = 100) -> LoadShedMiddleware:
    async def slow(request: Request) -> PlainTextResponse:
        await release.wait()
        return PlainTextResponse("done")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/slow", slow), Route("/healthz", health)]
    return LoadShedMiddleware(
        Starlette(routes=routes), max_inflight, per_tenant, 2, tenant_of=_header_tenant
    )


async def _held(app: LoadShedMiddleware, client: httpx.AsyncClient, tenants: list[str]) -> list:
    target = app.inflight + len(tenants)
    tasks = [asyncio.create_task(client.get("/slow", headers={"x-tenant": t})) for t in tenants]
    while app.inflight < target:
        await asyncio.sleep(0.01)
    return tasks


def test_requests_past_the_limit_get_503_with_retry_after() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        app = _app(release, max_inflight=2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = await _held(app, client, ["a", "b"])
            shed = await client.get("/slow", headers={"x-tenant": "c"})
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "2"
            assert shed.json()["error"]["code"] == "overloaded"
            assert (await client.get("/healthz")).status_code == 200  # never shed
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert app.inflight == 0 and not app.by_tenant
            assert (await client.get("/slow", headers={"x-tenant": "c"})).status_code == 200

    asyncio.run(scenario())


def test_requests_without_a_valid_key_hold_no_slot() -> None:
    """Strangers at the door (the route answers them 401) cannot fill the server for tenants."""

    async def scenario() -> None:
        release = asyncio.Event()
        app = _app(release, max_inflight=1)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            strangers = [asyncio.create_task(client.get("/slow")) for _ in range(20)]
            await asyncio.sleep(0.1)
            assert app.inflight == 0
            keyed = await _held(app, client, ["a"])
            release.set()
            results = await asyncio.gather(*strangers, *keyed)
            assert {r.status_code for r in results} == {200}

    asyncio.run(scenario())


def test_one_tenant_cannot_take_another_tenants_share() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        app = _app(release, max_inflight=4, per_tenant=2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = await _held(app, client, ["busy", "busy"])
            shed = await client.get("/slow", headers={"x-tenant": "busy"})
            assert shed.status_code == 503 and "your tenant" in shed.json()["error"]["reason"]
            held += await _held(app, client, ["quiet"])  # the other tenant still gets in
            assert app.by_tenant == {"busy": 2, "quiet": 1}
            release.set()
            assert {r.status_code for r in await asyncio.gather(*held)} == {200}

    asyncio.run(scenario())


def test_an_error_in_a_handler_frees_its_slot() -> None:
    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("handler failed")

    app = LoadShedMiddleware(
        Starlette(routes=[Route("/boom", boom)]), 1, 1, 1, tenant_of=_header_tenant
    )

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(3):
                r = await client.get("/boom", headers={"x-tenant": "a"})
                assert r.status_code == 500
        assert app.inflight == 0 and not app.by_tenant

    asyncio.run(scenario())


def test_a_body_that_stops_arriving_gets_408() -> None:
    """Headers and part of a body, then nothing: the deadline covers the whole body."""
    reached = []

    async def inner(scope: Scope, receive: object, send: object) -> None:
        reached.append(scope["path"])

    limit = BodyLimitMiddleware(inner, max_bytes=1000, timeout_seconds=0.3)  # type: ignore[arg-type]
    sent: list[Message] = []

    async def trickle() -> Message:
        await asyncio.sleep(0.1)  # a chunk every 0.1 s would pass a per-chunk timeout
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/search", "headers": []}
    asyncio.run(asyncio.wait_for(limit(scope, trickle, send), timeout=5))
    assert not reached
    assert sent[0]["status"] == 408 and b"body_timeout" in sent[1]["body"]
    # The rest of the body is never read: the server closes the connection at once.
    assert (b"connection", b"close") in sent[0]["headers"]


@pytest.mark.parametrize("limit", [1, 7])
def test_the_app_sheds_at_the_configured_depth(limit: int) -> None:
    from api.app import create_app
    from api.limits import key_tenant
    from core.settings import Settings
    from serving.platform import Platform

    settings = Settings(
        api_max_inflight=limit,
        api_max_inflight_per_tenant=limit + 1,
        api_retry_after_seconds=3,
        api_body_timeout_seconds=4.5,
    )
    app = create_app(Platform.open(settings))
    shed = [m for m in app.user_middleware if m.cls is LoadShedMiddleware]
    assert len(shed) == 1 and shed[0].kwargs == {
        "max_inflight": limit,
        "max_inflight_per_tenant": limit + 1,
        "retry_after_seconds": 3,
        "tenant_of": key_tenant,
    }
    body = [m for m in app.user_middleware if m.cls is BodyLimitMiddleware]
    assert body[0].kwargs["timeout_seconds"] == 4.5
    # The body limit runs first (user_middleware lists the outermost first): a request is
    # counted only once its body is in.
    assert app.user_middleware.index(body[0]) < app.user_middleware.index(shed[0])
