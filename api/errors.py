"""Every error leaves the API as `{"error": {"code", "reason", "field"?}}`.

Clients branch on `code` (stable, machine-readable), show `reason` (human-readable) and, for
validation errors, highlight `field`. FastAPI's and Starlette's own errors are rewritten into the
same shape, so no 4xx carries a different body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.text import printable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(description="stable and machine-readable, e.g. `invalid_filter`")
    reason: str = Field(description="what is wrong, for a human")
    field: str | None = Field(
        None, description="the parameter or body field at fault, when there is one"
    )


class ErrorResponse(BaseModel):
    """The body of every error response; the OpenAPI spec declares it for each error status."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class ApiError(Exception):
    """An error answered in the common shape; raise it from routes and dependencies."""

    def __init__(
        self,
        status: int,
        code: str,
        reason: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.field = field
        self.headers = headers

    def response(self) -> JSONResponse:
        # Reasons and fields may quote the caller's text; a lone surrogate in it would make the
        # response itself unencodable, so it is sent escaped.
        error: dict[str, str] = {"code": self.code, "reason": printable(self.reason)}
        if self.field is not None:
            error["field"] = printable(self.field)
        return JSONResponse({"error": error}, status_code=self.status, headers=self.headers)


def _field_of(loc: Sequence[Any], body: Any) -> str:
    """`top_k`, or for a filter condition the filter's own field name when it has one."""
    path = [p for p in loc if p != "body"]
    if len(path) >= 2 and path[0] == "filters" and isinstance(path[1], int):
        try:
            name = body["filters"][path[1]]["field"]
            if isinstance(name, str):
                return name
        except (KeyError, IndexError, TypeError):
            pass
    return ".".join(str(p) for p in path) or "body"


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


def _is_json(content_type: str) -> bool:
    """application/json or application/<anything>+json, parameters aside: what FastAPI reads."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _not_sent_as_json(request: Request, errors: Sequence[Any]) -> ApiError | None:
    """A body refused because it was not sent as JSON. FastAPI reads a body without a JSON
    Content-Type (curl's `-d` sends application/x-www-form-urlencoded, some clients none) as
    bytes and answers that a dictionary was expected, which does not tell the client what to
    change: 415 names the type expected and the one received."""
    content_type = request.headers.get("content-type")
    if content_type is not None and _is_json(content_type):
        return None
    if not any(e.get("loc") == ("body",) for e in errors):
        return None
    received = f"Content-Type {content_type!r}" if content_type is not None else "no Content-Type"
    return ApiError(
        415,
        "unsupported_media_type",
        f"the body must be JSON sent with Content-Type: application/json; this request has "
        f"{received} (curl: -H 'Content-Type: application/json')",
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if (unsupported := _not_sent_as_json(request, exc.errors())) is not None:
        return unsupported.response()
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return ApiError(422, "invalid_json", "the request body is not valid JSON").response()
    field = _field_of(first.get("loc", ()), exc.body)
    return ApiError(422, "invalid_request", str(first.get("msg", "invalid")), field).response()


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return ApiError(exc.status_code, code, str(exc.detail), headers=exc.headers).response()


def _state_unavailable(retry_after_seconds: int) -> Callable[[Request, Exception], Any]:
    """The state database unreachable, timed out or locked: the client may retry, nothing of
    its request was wrong (never a 500)."""

    async def handler(_: Request, exc: Exception) -> JSONResponse:
        log.warning("the state database failed a request: %s", exc)
        return ApiError(
            503,
            "state_unavailable",
            "the platform's state database did not answer; retry shortly",
            headers={"Retry-After": str(retry_after_seconds)},
        ).response()

    return handler


async def _unstorable_text(request: Request, exc: DataError) -> JSONResponse:
    """PostgreSQL stores no NUL character in text (SQLite does): an id or a text sent with one
    is the client's error, wherever it was sent. Any other value the database refuses is this
    platform's."""
    if "NUL" not in str(exc.orig):
        return await _unexpected(request, exc)
    return ApiError(
        422, "invalid_text", "the request holds text that cannot be stored (a NUL character?)"
    ).response()


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", "internal error; see the server log").response()


def install_error_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(OperationalError, _state_unavailable(retry_after_seconds))
    app.add_exception_handler(DataError, _unstorable_text)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
