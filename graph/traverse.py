"""Weighted breadth-first layers around seed entities, ignoring edge direction.

Each layer maps the nodes first reached at that hop to an activation: a node passes its own
activation to its neighbours in proportion to the weight of the edges between them (its total
spread over all its edges), so a neighbour tied to a seed by many shared sentences outranks one
met once, and a hub's activation is spread thin instead of flooding the next hop.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping

from graph.model import TenantGraph


def layers(
    graph: TenantGraph, seeds: Mapping[str, float], max_hops: int
) -> Iterator[dict[str, float]]:
    """Yield hop 0 (the seeds) up to `max_hops`, lazily, so callers can stop early."""
    current = {k: w for k, w in seeds.items() if k in graph.g}
    seen = set(current)
    for hop in range(max_hops + 1):
        if not current:
            return
        yield current
        if hop == max_hops:
            return
        nxt: Counter[str] = Counter()
        # In key order, not the graph's (which follows the order documents were added): each
        # activation is then a sum taken in one order, the same in every build of the graph.
        for node, activation in sorted(current.items()):
            neighbours = graph.neighbour_weights(node)
            total = sum(neighbours.values())
            for other, weight in neighbours.items():
                if other not in seen:
                    nxt[other] += activation * weight / total
        seen.update(nxt)
        current = dict(nxt)
