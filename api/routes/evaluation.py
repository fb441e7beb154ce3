"""Evaluation reports and golden sets over HTTP, tenant-scoped like every other route.

A key reaches only its own tenant's runs and golden set; only the operator key may name another
tenant with `?tenant=` (`api.auth.Principal.tenant_scope`, the rule of every route). Reports are
JSON or their HTML page; a signed link (`POST /v1/eval/runs/{id}/link`) opens the page in a
browser, which sends no API key. Runs are read from the state database, so every API replica
serves the runs any host's worker made.
`GET /v1/eval/latest` serves the newest BEIR benchmark report (the operator key only): a file in
this host's reports folder, as the benchmark writes it.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from api.auth import admin_target_scope, require_operator, target_scope
from api.errors import ApiError
from core.settings import Settings
from core.types import TenantScope
from eval.evaluation_store import EvaluationStore
from eval.golden import GoldenSetError, parse_golden
from eval.golden_store import GoldenStore
from eval.links import ReportLinks

router = APIRouter(prefix="/v1", tags=["evaluation"])
Format = Annotated[Literal["json", "html"], Query()]
Target = Annotated[TenantScope, Depends(target_scope)]
AdminTarget = Annotated[TenantScope, Depends(admin_target_scope)]


def _settings(request: Request) -> Settings:
    return request.app.state.runtime.settings


def _links(request: Request) -> ReportLinks:
    return request.app.state.api.links


def _finished(found: Any, tenant: str, run_id: str) -> Any:
    if found is None:
        raise ApiError(404, "run_not_found", f"tenant {tenant!r} has no finished run {run_id!r}")
    return found


def _report(settings: Settings, tenant: str, run_id: str) -> dict[str, Any]:
    store = EvaluationStore.open(settings)
    try:
        return _finished(store.report(tenant, run_id), tenant, run_id)
    finally:
        store.close()


def _page(settings: Settings, tenant: str, run_id: str) -> HTMLResponse:
    store = EvaluationStore.open(settings)
    try:
        return HTMLResponse(_finished(store.page(tenant, run_id), tenant, run_id))
    finally:
        store.close()


@router.get("/eval/runs")
def list_runs(request: Request, target: Target) -> dict[str, Any]:
    """The tenant's finished runs, newest first, with their means and regression flag."""
    name = target.tenant_id
    store = EvaluationStore.open(_settings(request))
    try:
        reports = store.finished_reports(name)
    finally:
        store.close()
    runs = [
        {
            "run_id": r["run_id"],
            "created_at": r["created_at"],
            "regression": r["regression"],
            "ragas": r["ragas"]["means"],
            "retrieval": {k: v["means"] for k, v in r["retrieval"].items()},
            "config_digest": r["config"]["digest"],
        }
        for r in reversed(reports)
    ]
    return {"tenant": name, "runs": runs}


@router.get("/eval/runs/{run_id}", response_model=None)
def get_run(
    run_id: str,
    request: Request,
    target: Target,
    format: Format = "json",
) -> dict[str, Any] | HTMLResponse:
    if format == "html":
        return _page(_settings(request), target.tenant_id, run_id)
    return _report(_settings(request), target.tenant_id, run_id)


@router.post("/eval/runs/{run_id}/link")
def link(run_id: str, request: Request, target: Target) -> dict[str, Any]:
    """A short-lived URL that opens the report's page without a key."""
    s = _settings(request)
    name = target.tenant_id
    store = EvaluationStore.open(s)
    try:
        _finished(store.is_finished(name, run_id) or None, name, run_id)
    finally:
        store.close()
    url = _links(request).link(name, run_id, str(request.base_url).rstrip("/"))
    return {"url": url, "expires_in": s.eval.link_ttl_seconds}


@router.get(
    "/eval/shared/{tenant}/{run_id}",
    response_class=HTMLResponse,
    responses={403: {"description": "the link has expired or its signature is wrong"}},
)
def shared(
    tenant: str, run_id: str, request: Request, expires: int = 0, sig: str = ""
) -> HTMLResponse:
    """The report page behind a signed link; an expired or forged link is a 403."""
    if not _links(request).is_valid(tenant, run_id, expires, sig):
        raise ApiError(403, "link_invalid", "the link has expired or its signature is wrong")
    return _page(_settings(request), tenant, run_id)


@router.get(
    "/eval/latest",
    response_model=None,
    dependencies=[Depends(require_operator)],
    responses={404: {"description": "no evaluation has finished"}},
)
def latest(request: Request, format: Format = "json") -> dict[str, Any] | HTMLResponse:
    """The newest finished BEIR benchmark report (`rag eval --dataset`): the operator's, as it
    is no tenant's and names the server's dataset folder."""
    root = _settings(request).eval.reports_dir
    runs = sorted(p.parent for p in root.glob("*/report.json"))
    if not runs:
        raise ApiError(404, "no_report", "no finished benchmark evaluation yet")
    if format == "html":
        return HTMLResponse((runs[-1] / "report.html").read_text(encoding="utf-8"))
    return json.loads((runs[-1] / "report.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- golden sets


class GoldenEdit(BaseModel):
    """Fields to change; the id stays."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    reference: str | None = None
    relevant_doc_ids: list[str] | None = None
    tags: dict[str, str] | None = None
    review: Literal["pending", "approved"] | None = None


def _store(request: Request) -> GoldenStore:
    return GoldenStore.open(_settings(request))


@router.get("/golden")
def list_golden(
    request: Request,
    target: Target,
    review: Annotated[Literal["pending", "approved"] | None, Query()] = None,
) -> dict[str, Any]:
    name = target.tenant_id
    store = _store(request)
    try:
        return {"tenant": name, "items": [i.model_dump() for i in store.items(name, review)]}
    finally:
        store.close()


_JSONL_BODY = {
    "required": True,
    "content": {
        "application/x-ndjson": {
            "schema": {"type": "string"},
            "example": '{"id": "q1", "question": "How many days of leave?", '
            '"reference": "Twenty five.", "relevant_doc_ids": ["handbook.md"]}\n',
        }
    },
}


@router.post("/golden/import", openapi_extra={"requestBody": _JSONL_BODY})
async def import_golden(request: Request, target: AdminTarget) -> dict[str, Any]:
    """A JSONL body (UTF-8), one item a line, as `rag golden import` reads a file; a bad line is a
    422 naming it and nothing is written."""
    name = target.tenant_id
    try:
        items = parse_golden(await request.body(), "body")
    except GoldenSetError as exc:
        raise ApiError(422, "invalid_golden", str(exc), "body") from None
    store = _store(request)
    try:
        return {"tenant": name, "imported": store.put(name, items)}
    finally:
        store.close()


@router.patch("/golden/{item_id:any_id}")
def edit_golden(
    item_id: str, edit: GoldenEdit, request: Request, target: AdminTarget
) -> dict[str, Any]:
    """Edit or approve (`{"review": "approved"}`) one item."""
    name = target.tenant_id
    store = _store(request)
    try:
        updated = store.update(name, item_id, edit.model_dump(exclude_unset=True))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ApiError(422, "invalid_request", first["msg"], field) from None
    finally:
        store.close()
    if updated is None:
        raise ApiError(404, "item_not_found", f"tenant {name!r} has no golden item {item_id!r}")
    return updated.model_dump()


@router.delete("/golden/{item_id:any_id}", status_code=204)
def delete_golden(item_id: str, request: Request, target: AdminTarget) -> None:
    name = target.tenant_id
    store = _store(request)
    try:
        deleted = store.delete(name, [item_id])
    finally:
        store.close()
    if not deleted:
        raise ApiError(404, "item_not_found", f"tenant {name!r} has no golden item {item_id!r}")
