"""The request bodies the README and docs/ show are ones the API takes: each search body (a
```json block, or a `curl -d '...'` body, holding a "query") is checked as POST /v1/search checks
it. The README once showed filter conditions one by one, where the API takes `filters` as a list."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from api.routes.search import to_search_request
from api.schemas import SearchBody
from core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted(ROOT.glob("docs/*.md")), *sorted(ROOT.glob("*/README.md"))]
JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)
CURL_BODY = re.compile(r"-d '(\{.*?\})'", re.DOTALL)


def _search_bodies() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for raw in JSON_BLOCK.findall(text) + CURL_BODY.findall(text):
            body = json.loads(raw)
            if isinstance(body, dict) and "query" in body:
                found.append((path.relative_to(ROOT).as_posix(), body))
    return found


def test_the_search_bodies_in_the_docs_are_valid_requests() -> None:
    bodies = _search_bodies()
    assert any("filters" in body for _, body in bodies), "no example shows how to send filters"
    for where, body in bodies:
        request = to_search_request(SearchBody.model_validate(body), Settings())
        assert len(request.filters) == len(body.get("filters", [])), where
