"""Limits at the door.

- `BodyLimitMiddleware`: bodies over `RAG_MAX_BODY_BYTES` get 413 before any handler parses them,
  and a body that has not fully arrived within `RAG_API_BODY_TIMEOUT_SECONDS` gets 408: a client
  that sends headers and part of a body and then waits holds a connection, never a worker.
- `LoadShedMiddleware`: requests past `RAG_API_MAX_INFLIGHT` get 503 with Retry-After instead of a
  timeout. Only requests with a valid key and a complete body are counted (it runs inside the
  body limit), each against its tenant's share `RAG_API_MAX_INFLIGHT_PER_TENANT` as well, so neither
  strangers nor one busy tenant can take the capacity every other tenant needs. Inside, searches
  and answers wait for their tenant's turn in fair pools (`api.fairness`): a tenant under its cap
  still cannot queue another one's searches behind its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import anyio
from sqlalchemy.exc import SQLAlchemyError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError

# The rest of a refused body is never read, so the connection cannot carry another request:
# closing it at once frees it instead of waiting out the keep-alive timeout.
_CLOSE = {"Connection": "close"}


class BodyLimitMiddleware:
    """Reads the body up front (bodies here are small JSON) and replays it to the app.

    Both a declared Content-Length and the bytes actually received are checked, so a chunked
    upload cannot slip past the limit. The whole body must arrive within `timeout_seconds` (a
    deadline for all of it, not per chunk, so a byte every few seconds does not keep it open).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, receive, send)
            return
        body, more = bytearray(), True
        with anyio.move_on_after(self.timeout_seconds) as deadline:
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                more = message.get("more_body", False)
                if len(body) > self.max_bytes:
                    await self._reject(scope, receive, send)
                    return
        if deadline.cancelled_caught:
            reason = f"the request body did not arrive within {self.timeout_seconds:g} seconds"
            error = ApiError(408, "body_timeout", reason, headers=_CLOSE)
            await error.response()(scope, receive, send)
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
        error = ApiError(413, "body_too_large", reason, headers=_CLOSE)
        await error.response()(scope, receive, send)


class LoadShedMiddleware:
    """Answers 503 with Retry-After once `max_inflight` keyed requests are in the server, or
    `max_inflight_per_tenant` of one tenant.

    Requests past the pools' slots wait for their turn; past this depth, a client is better
    served by a quick "come back in a second" (which load balancers and retrying clients act on)
    than by a timeout. `tenant_of` names the tenant of a request's valid key, or None: requests
    without one hold no slot (they get their 401 from the route, or are public: health, docs),
    so they cannot fill the server for the keyed ones. Health checks and metrics are never shed,
    so an overloaded replica is not mistaken for a dead one.
    """

    _EXEMPT = ("/healthz", "/metrics")

    def __init__(
        self,
        app: ASGIApp,
        max_inflight: int,
        max_inflight_per_tenant: int,
        retry_after_seconds: int,
        tenant_of: Callable[[Scope], str | None],
    ) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.max_inflight_per_tenant = max_inflight_per_tenant
        self.retry_after = str(retry_after_seconds)
        self.tenant_of = tenant_of
        self.inflight = 0  # the event loop is single-threaded: no lock needed
        self.by_tenant: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._EXEMPT:
            await self.app(scope, receive, send)
            return
        tenant = self.tenant_of(scope)
        if tenant is None:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            reason = f"the server is at its limit of {self.max_inflight} requests in flight"
        elif self.by_tenant[tenant] >= self.max_inflight_per_tenant:
            reason = (
                f"your tenant is at its limit of {self.max_inflight_per_tenant} requests in flight"
            )
        else:
            reason = ""
        if reason:
            error = ApiError(503, "overloaded", reason, headers={"Retry-After": self.retry_after})
            await error.response()(scope, receive, send)
            return
        self.inflight += 1
        self.by_tenant[tenant] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
            self.by_tenant[tenant] -= 1
            if not self.by_tenant[tenant]:
                del self.by_tenant[tenant]


def key_tenant(scope: Scope) -> str | None:
    """The tenant of the request's key if the key is valid: the share a request is counted in.

    The token is read as `api.auth.current_principal` reads it (`Authorization: Bearer`, else
    `X-API-Key`) and verified by the same key store; the route verifies it again and answers the
    401 (and audits it) for a key that is not valid. The lookup is one indexed SQLite read, quick
    enough for the event loop, where a flood of refused keys then costs no worker thread.
    """
    headers = Headers(scope=scope)
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    token = token or headers.get("x-api-key", "")
    if not token:
        return None
    try:
        principal = scope["app"].state.api.keys.verify(token)
    except SQLAlchemyError:  # the state database is away: the route answers it (503)
        return None
    return principal.tenant_id if principal is not None else None
