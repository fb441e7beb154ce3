"""The graph as a retrieval leg: chunks that support the query's entities and their neighbours.

Ranking is by hop distance first (a chunk naming a query entity beats one naming a neighbour),
then by weight: at hop 0 the summed specificity (idf) of the query entities a chunk names, further
out the summed activation of the neighbours it names. Layers are expanded only until the limit is
reached, so a query naming a hub never walks the whole graph.
"""

from __future__ import annotations

from collections import Counter
from itertools import groupby

from core.types import TenantScope
from graph.model import TenantGraph
from graph.store import GraphStore
from graph.traverse import layers


class GraphLeg:
    """Ranks chunk point ids for a query; fused with dense and BM25 by `core.index.ranking.rrf`."""

    name = "graph"

    def __init__(self, store: GraphStore, max_hops: int, max_chunks: int) -> None:
        self._store = store
        self._max_hops = max_hops
        self._max_chunks = max_chunks

    def rank(self, scope: TenantScope, query: str, limit: int | None = None) -> list[str]:
        """Chunk point ids, best first, at most min(limit, max_chunks) (None: max_chunks)."""
        most = self._max_chunks if limit is None else min(limit, self._max_chunks)
        with self._store.read(scope) as graph:
            seeds = {key: graph.idf(key) for key in graph.mentioned_in(query)}
            return rank_chunks(graph, seeds, self._max_hops, most)


def rank_chunks(
    graph: TenantGraph, seeds: dict[str, float], max_hops: int, limit: int
) -> list[str]:
    """Chunks by hop, then score; a group of equal scores is taken whole or not at all.

    Chunks that tie (say, the 90 chunks naming only `p53`) are indistinguishable to the graph,
    so rather than pass an arbitrary few of them to the fusion as if ranked, the leg stops there.
    """
    ranked: list[str] = []
    placed: set[str] = set()
    for layer in layers(graph, seeds, max_hops):
        scores: Counter[str] = Counter()
        # Summed in key order, as `layers` sums: floating-point sums taken in the graph's order
        # (that of ingestion) differ in their last bits from one build to another, which
        # decides both the order and whether two chunks tie.
        for key, activation in sorted(layer.items()):
            for cid in graph.g.nodes[key]["chunks"]:
                if cid not in placed:
                    scores[cid] += activation
        for _, tied in groupby(sorted(scores, key=lambda c: (-scores[c], c)), key=scores.get):
            group = list(tied)
            if len(ranked) + len(group) > limit:
                return ranked
            ranked += group
        placed.update(scores)
    return ranked
