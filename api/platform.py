"""The served application: the API, plus the graph's and the evaluation's routes and the graph leg.

`rag serve` and `rag up` both build their app here, so the two ways of running expose the same API.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from api.app import create_app
from api.routes import evaluation
from serving.platform import Platform


def platform_app(platform: Platform, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    s = platform.settings
    routers = [evaluation.router, *extra_routers]
    if s.graph_enabled:
        from graph.api import make_router

        routers.append(make_router(platform.graph_store))
    return create_app(platform, extra_routers=routers)
