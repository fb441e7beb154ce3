"""`GET /v1/graph/entities` and `GET /v1/graph/entities/{key}/neighbors`, tenant-scoped.

The router is built around a store (`make_router(store)`) and mounted with
`create_app(runtime, extra_routers=[make_router(store)])`. Its tenant comes from the caller's key
through `api.auth.current_scope`; tests pass another dependency returning a fixed scope.
"""

# No `from __future__ import annotations`: FastAPI must see the `Scope` alias built inside
# make_router, which a string annotation resolved against module globals would not find.
import heapq
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.auth import current_scope
from api.errors import ApiError
from core.types import TenantScope
from graph.extract import normalise_key
from graph.model import TenantGraph
from graph.store import GraphStore
from graph.traverse import layers


class EntityOut(BaseModel):
    key: str
    name: str
    type: str
    chunk_count: int  # chunks that mention it
    degree: int  # entities it is related to, in either direction


class EntityList(BaseModel):
    entities: list[EntityOut]


class NeighbourOut(EntityOut):
    hops: int
    score: float  # activation spread from the entity, see graph.traverse


class EdgeOut(BaseModel):
    source: str
    target: str
    type: str
    weight: float


class Neighbourhood(BaseModel):
    entity: EntityOut
    neighbors: list[NeighbourOut]
    edges: list[EdgeOut]  # relations among the entity and the neighbours listed


def make_router(
    store: GraphStore, scope_dependency: Callable[..., TenantScope] = current_scope
) -> APIRouter:
    router = APIRouter(prefix="/v1/graph", tags=["graph"])
    Scope = Annotated[TenantScope, Depends(scope_dependency)]

    @router.get("/entities", response_model=EntityList)
    def entities(
        scope: Scope,
        q: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> EntityList:
        """Entities whose key contains `q` (exact, then prefix, then most mentioned first);
        without `q`, the most mentioned entities."""
        needle = normalise_key(q) if q is not None else ""
        if q is not None and not needle:
            raise ApiError(422, "empty_query", "q has no letters or digits", "q")
        with store.read(scope) as graph:
            return EntityList(
                entities=[EntityOut(**graph.describe(k)) for k in _search(graph, needle, limit)]
            )

    @router.get("/entities/{key}/neighbors", response_model=Neighbourhood)
    def neighbors(
        scope: Scope,
        key: Annotated[str, Path(max_length=300)],
        hops: Annotated[int, Query(ge=1, le=3)] = 1,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> Neighbourhood:
        """Entities within `hops` of `key`, nearest first, then by score."""
        with store.read(scope) as graph:
            if key not in graph.g:
                raise ApiError(404, "entity_not_found", f"no entity {key!r} in this tenant", "key")
            reached = [
                (hop, -score, other)
                for hop, layer in enumerate(layers(graph, {key: 1.0}, hops))
                for other, score in layer.items()
                if hop > 0
            ]
            nearest = heapq.nsmallest(limit, reached)
            shown = {key} | {other for _, _, other in nearest}
            return Neighbourhood(
                entity=EntityOut(**graph.describe(key)),
                neighbors=[
                    NeighbourOut(**graph.describe(other), hops=hop, score=-neg)
                    for hop, neg, other in nearest
                ],
                edges=[
                    EdgeOut(source=s, target=t, type=kind, weight=attrs["weight"])
                    for s, t, kind, attrs in graph.g.out_edges(shown, keys=True, data=True)
                    if t in shown
                ],
            )

    return router


def _search(graph: TenantGraph, needle: str, limit: int) -> list[str]:
    def rank(key: str) -> tuple[int, int, str]:
        closeness = 0 if key == needle else 1 if key.startswith(needle) else 2
        return closeness, -len(graph.g.nodes[key]["chunks"]), key

    return heapq.nsmallest(limit, (k for k in graph.g if needle in k), key=rank)
