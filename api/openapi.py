"""The API's docs pages and its OpenAPI spec, both true on a machine without internet.

Swagger UI and ReDoc are served from the assets the `fastapi-offline` package installs (FastAPI's
own pages load them from a CDN, so `/docs` was blank offline). The spec declares, for every
operation, each error status it can answer with the one error body of `api.errors`, in place of
FastAPI's `HTTPValidationError`, which no response of this API ever has, and the key it needs
(`x-required-role`: operator, admin or reader, absent when it needs none).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles

from api.auth import current_principal, require_admin, require_operator
from api.errors import ErrorResponse
from api.limits import LoadShedMiddleware

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_ASSETS_URL = "/docs-assets"

# Why each status can come back; operations add their own reasons through `responses=`.
_REASONS = {
    401: "no API key, or an unknown or revoked one",
    404: "no such resource in the caller's tenant",
    408: "the request body did not arrive within RAG_API_BODY_TIMEOUT_SECONDS",
    413: "the request body is larger than RAG_MAX_BODY_BYTES",
    415: "the body is not sent as JSON (Content-Type: application/json)",
    422: "the request is invalid; `field` names the parameter or body field",
    503: "the server is at RAG_API_MAX_INFLIGHT requests, or the key's tenant at "
    "RAG_API_MAX_INFLIGHT_PER_TENANT, or the state database did not answer; retry after "
    "`Retry-After` seconds",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
# Who may call an operation, by the strongest key check among its dependencies (`x-required-role`).
_ROLES = ((require_operator, "operator"), (require_admin, "admin"), (current_principal, "reader"))
_FORBIDDEN = {
    "operator": "the operator key (RAG_ADMIN_API_KEY) is needed",
    "admin": "an admin key is needed",
    "tenant": "the request names another tenant than the key's own (only the operator key may)",
}


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def required_role(route: Any) -> str | None:
    """The key `route` needs: "operator", "admin", "reader" (any key), or None for none."""
    calls = {d.call for d in _dependants(route.dependant)}
    return next((role for check, role in _ROLES if check in calls), None)


def takes_tenant(route: Any) -> bool:
    """Whether `route` takes a tenant: a `tenant` parameter (its dependencies' too) or body field.

    Every such route must settle it by `api.auth.Principal.tenant_scope`, which answers 403 to a
    key naming a tenant not its own."""
    for d in _dependants(route.dependant):
        if any(p.name == "tenant" for p in (*d.query_params, *d.path_params)):
            return True
        bodies = [getattr(b.field_info.annotation, "model_fields", {}) for b in d.body_params]
        if any("tenant" in fields for fields in bodies):
            return True
    return False


def _forbidden(route: Any) -> str | None:
    """Why `route` may answer 403, or None if it never does."""
    reasons = []
    if (role := required_role(route)) in _FORBIDDEN:
        reasons.append(_FORBIDDEN[role])
    if takes_tenant(route) and role is not None:
        reasons.append(_FORBIDDEN["tenant"])
    return "; or ".join(reasons) or None


def error_statuses(route: Any) -> set[int]:
    """The error statuses `route` (an APIRoute as mounted) can answer with, read from its
    dependencies (the router's too) and its parameters (its dependencies' too)."""
    dependants = list(_dependants(route.dependant))
    calls = {d.call for d in dependants}
    paths = any(d.path_params for d in dependants)
    queries = any(d.query_params for d in dependants)
    # FastAPI reads a JSON body for the route (415 when it is not sent as JSON); a body the route
    # reads itself is declared in its `openapi_extra`.
    json_body = any(d.body_params for d in dependants)
    body = json_body or "requestBody" in (route.openapi_extra or {})
    statuses = {int(s) for s in route.responses if str(s).isdigit() and int(s) >= 400}
    if current_principal in calls:
        statuses.add(401)
    if _forbidden(route):
        statuses.add(403)
    if paths:
        statuses.add(404)
    if body:
        statuses |= {408, 413}
    if json_body:
        statuses.add(415)
    if body or queries or paths:
        statuses.add(422)
    if route.path not in LoadShedMiddleware._EXEMPT:
        statuses.add(503)
    return statuses


def _document_errors(app: FastAPI, spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_spec = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_spec.pop("$defs", {}))
    schemas["ErrorResponse"] = error_spec
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods:
            operation = spec["paths"][route.path_format][method.lower()]
            if role := required_role(route):
                operation["x-required-role"] = role
            responses = operation.setdefault("responses", {})
            reasons = {**_REASONS, 403: _forbidden(route)}
            for status in sorted(error_statuses(route)):
                declared = responses.get(str(status), {})
                description = declared.get("description") or reasons.get(status) or "an error"
                if description == "Validation Error":  # FastAPI's, for HTTPValidationError
                    description = _REASONS[422]
                responses[str(status)] = {
                    "description": description,
                    "content": {"application/json": {"schema": _ERROR_REF}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return spec


def install_docs(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets locally, and the spec with the real error bodies.

    `app` must be built with `docs_url=None, redoc_url=None` (FastAPI's pages use a CDN).
    """
    app.mount(_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = _document_errors(app, spec)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{_ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{_ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
