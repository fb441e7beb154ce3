"""The served application: the API with the graph leg, when the settings enable it.

`rag serve` and `rag up` both build their app here, so the two ways of running expose the same API.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from api.app import create_app
from core.runtime import Runtime
from serving.search import served_legs


def platform_app(runtime: Runtime, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    return create_app(runtime, extra_routers=extra_routers, extra_legs=served_legs(runtime))
