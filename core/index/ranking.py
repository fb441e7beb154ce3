"""The one order of ranked hits, and Reciprocal Rank Fusion in that order.

Exact score ties are common: identical chunks in two documents score alike in every leg, and RRF
gives a chunk at rank 3 of one leg only the score of another at rank 3 of the other leg only.
An engine returns tied hits in the order of its internal offsets, which follow the order the
points were written, so a rebuild of the same corpus (which every configuration change starts)
would order them differently, and an evaluation would report the noise as a change. Every leg and
every fusion therefore orders its hits by `ranking_key`: score, then document id, then the chunk's
position in it, all derived from the content, so the same corpus and settings rank the same in
any build, order of ingestion or backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from core.types import Hit

# What ordering a hit reads of its payload; a leg fetches these two fields, the rest of the
# payload only for the hits that survive the cut.
TIE_FIELDS = ("doc_id", "ordinal")


def ranking_key(hit: Hit) -> tuple[float, str, int, str]:
    """Best score first; exact ties by document id, then chunk position. The point id, derived
    from tenant, document and chunk text, settles points that carry neither field."""
    payload = hit.payload
    return (-hit.score, str(payload.get("doc_id", "")), int(payload.get("ordinal", 0)), hit.id)


def rrf(
    rankings: Mapping[str, Sequence[Hit]],
    k: int,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
) -> list[Hit]:
    """Fuse ranked hits by leg name: score(d) = sum over legs of w_leg / (k + rank_leg(d)), ranks
    from 1, as Cormack et al. and Qdrant's engine fusion; ordered by `ranking_key`.

    Each fused hit is new, with the payload of the first leg that found it and its rank in each.
    """
    fused: dict[str, Hit] = {}
    for leg, hits in rankings.items():
        weight = 1.0 if weights is None else weights.get(leg, 1.0)
        for rank, hit in enumerate(hits, start=1):
            entry = fused.setdefault(hit.id, Hit(hit.id, 0.0, hit.payload))
            entry.score += weight / (k + rank)
            entry.leg_ranks[leg] = rank
    ordered = sorted(fused.values(), key=ranking_key)
    return ordered[:limit] if limit is not None else ordered
