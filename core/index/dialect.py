"""Translate the neutral filter model into one Qdrant binding's classes.

qdrant-edge-py and qdrant-client name their condition classes alike; a `FilterDialect` holds the
few constructors that differ, so one function builds tenant-scoped filters for both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.index.query import FieldFilter, Range
from core.types import TenantScope


@dataclass(frozen=True)
class FilterDialect:
    filter: Callable[..., Any]
    field: Callable[..., Any]
    match_value: Callable[..., Any]
    match_any: Callable[..., Any]
    number_range: Callable[..., Any]
    datetime_range: Callable[..., Any]


def _bound(value: float | datetime | None) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _condition(f: FieldFilter, d: FilterDialect) -> Any:
    if f.op == "eq":
        return d.field(key=f.field, match=d.match_value(value=f.value))
    if f.op == "any":
        return d.field(key=f.field, match=d.match_any(any=list(f.value)))
    assert isinstance(f.value, Range)
    make = d.datetime_range if f.value.is_datetime else d.number_range
    bounds = {k: _bound(getattr(f.value, k)) for k in ("gte", "gt", "lte", "lt")}
    return d.field(key=f.field, range=make(**{k: v for k, v in bounds.items() if v is not None}))


def scoped_filter(
    scope: TenantScope, filters: tuple[FieldFilter, ...], d: FilterDialect, **extra: str
) -> Any:
    """The tenant must-condition first, then the user's conditions and exact-match `extra` ones."""
    must = [d.field(key="tenant_id", match=d.match_value(value=scope.tenant_id))]
    must += [d.field(key=k, match=d.match_value(value=v)) for k, v in extra.items()]
    must += [_condition(f, d) for f in filters]
    return d.filter(must=must)
