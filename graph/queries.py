"""What the graph API answers, on one tenant's graph: entity search and an entity's neighbourhood.

The HTTP routes (`api.routes.graph`) only read the caller's graph and shape these answers.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from graph.model import TenantGraph
from graph.traverse import layers


@dataclass(frozen=True)
class Neighbour:
    key: str
    hops: int
    score: float  # activation spread from the entity, see graph.traverse


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    type: str
    weight: float


@dataclass(frozen=True)
class EntityNeighbourhood:
    neighbours: list[Neighbour]  # nearest first, then by score
    edges: list[Edge]  # relations among the entity and the neighbours listed


def find_entities(graph: TenantGraph, needle: str, limit: int) -> list[str]:
    """Keys containing `needle` (a normalised key; "" matches all): exact, then prefix, then the
    most mentioned first."""

    def rank(key: str) -> tuple[int, int, str]:
        closeness = 0 if key == needle else 1 if key.startswith(needle) else 2
        return closeness, -len(graph.g.nodes[key]["chunks"]), key

    return heapq.nsmallest(limit, (k for k in graph.g if needle in k), key=rank)


def neighbourhood(graph: TenantGraph, key: str, hops: int, limit: int) -> EntityNeighbourhood:
    """The `limit` entities nearest to `key` (a node of `graph`) within `hops`, and the edges
    among them and `key`."""
    reached = [
        (hop, -score, other)
        for hop, layer in enumerate(layers(graph, {key: 1.0}, hops))
        for other, score in layer.items()
        if hop > 0
    ]
    nearest = heapq.nsmallest(limit, reached)
    shown = {key} | {other for _, _, other in nearest}
    return EntityNeighbourhood(
        neighbours=[Neighbour(other, hop, -neg) for hop, neg, other in nearest],
        edges=[
            Edge(s, t, kind, attrs["weight"])
            for s, t, kind, attrs in graph.g.out_edges(shown, keys=True, data=True)
            if t in shown
        ],
    )
