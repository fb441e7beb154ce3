"""What a search asks of the index, independent of which Qdrant runs it.

An `EngineQuery` cannot exist without a `TenantScope`, and every backend turns the scope into a
must-condition inside the engine query itself, so no code path can query across tenants or filter
tenants after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

from core.types import TenantScope

Scalar = str | int | float | bool
LegName = Literal["dense", "bm25"]


@dataclass(frozen=True)
class Range:
    """Bounds on a number or an ISO-8601 datetime; at least one bound is set."""

    gte: float | datetime | None = None
    gt: float | datetime | None = None
    lte: float | datetime | None = None
    lt: float | datetime | None = None

    def __post_init__(self) -> None:
        bounds = [b for b in (self.gte, self.gt, self.lte, self.lt) if b is not None]
        if not bounds:
            raise ValueError("a range needs at least one of gte, gt, lte, lt")
        if len({isinstance(b, datetime) for b in bounds}) > 1:
            raise ValueError("a range mixes datetimes and numbers")

    @property
    def is_datetime(self) -> bool:
        return any(isinstance(b, datetime) for b in (self.gte, self.gt, self.lte, self.lt))


@dataclass(frozen=True)
class FieldFilter:
    """One metadata condition: `eq` a value, `any` of values, or within a `range`."""

    field: str
    op: Literal["eq", "any", "range"]
    value: Scalar | tuple[Scalar, ...] | Range


@dataclass(frozen=True)
class EngineQuery:
    """A scoped search: dense leg if `dense` is set, BM25 leg if `text` is set, RRF when both
    (`ChunkIndex.search`)."""

    scope: TenantScope
    limit: int
    dense: np.ndarray | None = None
    text: str | None = None
    filters: tuple[FieldFilter, ...] = ()
    # Hits each leg contributes to the fusion, RRF's k and the most hits a leg fetches to order
    # a tie at its cut: the settings' candidates_per_leg, rrf_k and tie_fetch_limit, passed by
    # the caller (required, so no second default lives here).
    candidates: int = field(kw_only=True)
    rrf_k: int = field(kw_only=True)
    tie_fetch_limit: int = field(kw_only=True)
    with_leg_ranks: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.scope, TenantScope):
            raise TypeError("EngineQuery needs a TenantScope; unscoped queries are not allowed")
        if self.dense is None and not self.text:
            raise ValueError("EngineQuery needs a dense vector, a text, or both")
        if self.limit < 1 or self.candidates < 1:
            raise ValueError("limit and candidates must be positive")

    @property
    def legs(self) -> tuple[LegName, ...]:
        legs: list[LegName] = []
        if self.dense is not None:
            legs.append("dense")
        if self.text:
            legs.append("bm25")
        return tuple(legs)
