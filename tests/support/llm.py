"""A stub of a remote OpenAI-compatible LLM, which cannot run here, for the API's answer path."""

from __future__ import annotations

import json
import re

import httpx

LLM_URL = "http://llm.test/v1"


def fake_llm(request: httpx.Request) -> httpx.Response:
    """A stub for a remote OpenAI-compatible LLM, which cannot run here: it answers by citing
    the first source it was given and an id that was not among the sources."""
    body = json.loads(request.content)
    prompt = body["messages"][-1]["content"]
    if "llm outage" in prompt:
        return httpx.Response(500, json={"error": "overloaded"})
    if "llm unreachable" in prompt:
        raise httpx.ConnectError(f"connection refused: {request.url}", request=request)
    if "llm flood" in prompt:  # 20 MB, streamed without a declared length
        return httpx.Response(200, content=(b"x" * (1 << 20) for _ in range(20)))
    first = re.search(r"id=([0-9a-f-]{36})", prompt)
    assert first is not None
    bogus = "00000000-0000-0000-0000-000000000000"
    content = f"Foxes hunt at dawn [{first.group(1)}], see also [{bogus}]."
    return httpx.Response(200, json={"choices": [{"message": {"content": content}}]})
