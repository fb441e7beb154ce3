"""Load shedding at the door: past `max_inflight` requests in the server, a 503 with Retry-After,
never for health checks; and the real app carries it with the configured depth."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from api.limits import LoadShedMiddleware


def _app(release: asyncio.Event, max_inflight: int) -> LoadShedMiddleware:
    async def slow(request: Request) -> PlainTextResponse:
        await release.wait()
        return PlainTextResponse("done")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    routes = [Route("/slow", slow), Route("/healthz", health)]
    return LoadShedMiddleware(Starlette(routes=routes), max_inflight, retry_after_seconds=2)


def test_requests_past_the_limit_get_503_with_retry_after() -> None:
    async def scenario() -> None:
        release = asyncio.Event()
        app = _app(release, max_inflight=2)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = [asyncio.create_task(client.get("/slow")) for _ in range(2)]
            while app.inflight < 2:
                await asyncio.sleep(0.01)
            shed = await client.get("/slow")
            assert shed.status_code == 503
            assert shed.headers["retry-after"] == "2"
            assert shed.json()["error"]["code"] == "overloaded"
            assert (await client.get("/healthz")).status_code == 200  # never shed
            release.set()
            assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
            assert app.inflight == 0
            assert (await client.get("/slow")).status_code == 200  # room again

    asyncio.run(scenario())


def test_an_error_in_a_handler_frees_its_slot() -> None:
    async def boom(request: Request) -> PlainTextResponse:
        raise RuntimeError("handler failed")

    app = LoadShedMiddleware(Starlette(routes=[Route("/boom", boom)]), 1, retry_after_seconds=1)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(3):
                assert (await client.get("/boom")).status_code == 500
        assert app.inflight == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("limit", [1, 7])
def test_the_app_sheds_at_the_configured_depth(limit: int) -> None:
    from api.app import create_app
    from core.runtime import Runtime
    from core.settings import Settings

    app = create_app(Runtime(Settings(api_max_inflight=limit, api_retry_after_seconds=3)))
    layers = [m for m in app.user_middleware if m.cls is LoadShedMiddleware]
    assert len(layers) == 1 and layers[0].kwargs == {
        "max_inflight": limit,
        "retry_after_seconds": 3,
    }
