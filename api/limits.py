"""Limits at the door: bodies over `max_body_bytes` get 413 before any handler parses them, and
requests past `api_max_inflight` get 503 with Retry-After instead of a timeout."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError


class BodyLimitMiddleware:
    """Reads the body up front (bodies here are small JSON) and replays it to the app.

    Both a declared Content-Length and the bytes actually received are checked, so a chunked
    upload cannot slip past the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await self._reject(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = f"request bodies are limited to {self.max_bytes} bytes"
        await ApiError(413, "body_too_large", reason).response()(scope, receive, send)


class LoadShedMiddleware:
    """Answers 503 with Retry-After once `max_inflight` requests are in the server.

    Requests past the thread pool wait in anyio's queue; past this depth, a client is better
    served by a quick "come back in a second" (which load balancers and retrying clients act on)
    than by a timeout. Health checks and metrics are never shed, so an overloaded replica is not
    mistaken for a dead one.
    """

    _EXEMPT = ("/healthz", "/metrics")

    def __init__(self, app: ASGIApp, max_inflight: int, retry_after_seconds: int) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.retry_after = str(retry_after_seconds)
        self.inflight = 0  # the event loop is single-threaded: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            reason = f"the server is at its limit of {self.max_inflight} requests in flight"
            error = ApiError(503, "overloaded", reason, headers={"Retry-After": self.retry_after})
            await error.response()(scope, receive, send)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
