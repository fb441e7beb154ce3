"""`GET /v1/graph/entities` and `GET /v1/graph/entities/{key}/neighbors`, tenant-scoped.

Mounted when `RAG_GRAPH_ENABLED` is on. The queries are `graph.queries`; these routes read the
caller's tenant graph from the runtime's graph store and shape the answers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from api.auth import current_scope
from api.errors import ApiError
from api.schemas import EdgeOut, EntityList, EntityOut, Neighbourhood, NeighbourOut
from api.state import ApiState, api_state
from core.types import TenantScope
from graph import queries
from graph.extract import normalise_key
from graph.store import GraphStore

router = APIRouter(prefix="/v1/graph", tags=["graph"])
Scope = Annotated[TenantScope, Depends(current_scope)]


def graph_store(state: Annotated[ApiState, Depends(api_state)]) -> GraphStore:
    """The platform's graph store; sync, since its first use opens it (files or Redis)."""
    return state.platform.graph_store


Store = Annotated[GraphStore, Depends(graph_store)]


@router.get("/entities", response_model=EntityList)
def entities(
    scope: Scope,
    store: Store,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> EntityList:
    """Entities whose key contains `q` (exact, then prefix, then most mentioned first);
    without `q`, the most mentioned entities."""
    needle = normalise_key(q) if q is not None else ""
    if q is not None and not needle:
        raise ApiError(422, "empty_query", "q has no letters or digits", "q")
    with store.read(scope) as graph:
        found = queries.find_entities(graph, needle, limit)
        return EntityList(entities=[EntityOut(**graph.describe(k)) for k in found])


@router.get("/entities/{key}/neighbors", response_model=Neighbourhood)
def neighbors(
    scope: Scope,
    store: Store,
    key: Annotated[str, Path(max_length=300)],
    hops: Annotated[int, Query(ge=1, le=3)] = 1,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Neighbourhood:
    """Entities within `hops` of `key`, nearest first, then by score."""
    with store.read(scope) as graph:
        if key not in graph.g:
            raise ApiError(404, "entity_not_found", f"no entity {key!r} in this tenant", "key")
        near = queries.neighbourhood(graph, key, hops, limit)
        return Neighbourhood(
            entity=EntityOut(**graph.describe(key)),
            neighbors=[
                NeighbourOut(**graph.describe(n.key), hops=n.hops, score=n.score)
                for n in near.neighbours
            ],
            edges=[
                EdgeOut(source=e.source, target=e.target, type=e.type, weight=e.weight)
                for e in near.edges
            ],
        )
