"""Reciprocal Rank Fusion in Python, for when a leg (the graph) lives outside the engine.

Same formula as the engine's: score(d) = sum over legs of w_leg / (k + rank_leg(d)), ranks from 1,
so a query fused here and one fused in Qdrant rank identically; exact ties are ordered by id in
both (`retrieval.hybrid.stable_order`), so the same query always returns the same order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass
class Fused:
    id: str
    score: float
    leg_ranks: dict[str, int] = field(default_factory=dict)


def rrf(
    rankings: Mapping[str, Sequence[str]],
    k: int,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Fused]:
    """Fuse ranked id lists by leg name; exact ties in score are ordered by id."""
    fused: dict[str, Fused] = {}
    for leg, ids in rankings.items():
        weight = 1.0 if weights is None else weights.get(leg, 1.0)
        for rank, pid in enumerate(ids, start=1):
            entry = fused.setdefault(pid, Fused(pid, 0.0))
            entry.score += weight / (k + rank)
            entry.leg_ranks[leg] = rank
    ordered = sorted(fused.values(), key=lambda f: (-f.score, f.id))
    return ordered[:limit] if limit is not None else ordered
