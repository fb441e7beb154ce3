"""`GET /v1/eval/latest`: the latest finished evaluation report, as JSON or its HTML page.

Mounted by the API with `app.include_router(eval_router)` (plus the API's auth dependency). The
report folder comes from the settings unless a dependency override supplies another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from api.errors import ApiError
from core.settings import get_settings

eval_router = APIRouter(prefix="/v1/eval", tags=["evaluation"])


def reports_dir() -> Path:
    return get_settings().eval_reports_dir


def latest_run(root: Path) -> Path | None:
    """The newest run folder with a finished report (report.json is written last)."""
    runs = sorted(p.parent for p in root.glob("*/report.json"))
    return runs[-1] if runs else None


@eval_router.get(
    "/latest", response_model=None, responses={404: {"description": "no evaluation has finished"}}
)
def latest(
    root: Annotated[Path, Depends(reports_dir)],
    format: Annotated[Literal["json", "html"], Query()] = "json",
) -> dict[str, Any] | HTMLResponse:
    run = latest_run(root)
    if run is None:
        raise ApiError(404, "no_report", f"no finished evaluation in {root}")
    if format == "html":
        return HTMLResponse((run / "report.html").read_text(encoding="utf-8"))
    return json.loads((run / "report.json").read_text(encoding="utf-8"))
