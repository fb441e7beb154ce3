"""User metadata filters: checked against the payload schema, turned into engine conditions.

A request names a field and one operator: `eq` a value, `any` of values, or range bounds
(`gte`, `gt`, `lte`, `lt`) on a number or an ISO-8601 datetime. Fields are the indexed payload
fields of `core.index.schema.FILTERABLE_FIELDS` plus sidecar metadata as `meta.<key>`. Anything
else is a `FilterError` that names the field, so the API can answer 422 with it; so is a field
name or string value that cannot be encoded as UTF-8 (a lone surrogate), which the engine binding
would otherwise fail on deep inside the query.

`matches` evaluates the same conditions on a payload in Python. It exists for ids that come from
a leg outside the engine (the graph), whose payloads are fetched by id and so never passed through
the engine's filter; for everything else the filter runs inside the engine query.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from core.index import FieldFilter, Range
from core.index.query import Scalar
from core.index.schema import FILTERABLE_FIELDS, META_PREFIX, IndexKind
from core.text import printable, utf8_error
from core.types import META_KEY_RULE, is_meta_key

RANGE_OPS = ("gte", "gt", "lte", "lt")
OPERATORS = ("eq", "any", *RANGE_OPS)


_SHOWN_CHARS = 80


def _shown(value: object) -> str:
    """A caller's value quoted in a reason, cut short: a reason echoes, it does not copy."""
    shown = repr(value)
    return shown if len(shown) <= _SHOWN_CHARS else shown[:_SHOWN_CHARS] + "…"


class FilterError(ValueError):
    """A filter that cannot run; `field` is the filter's field as the caller wrote it, with any
    character UTF-8 cannot encode escaped (so the error can always be sent) and a long name cut
    (an error names the field, it does not copy it)."""

    def __init__(self, field: str, reason: str) -> None:
        field = printable(field if len(field) <= _SHOWN_CHARS else field[:_SHOWN_CHARS] + "…")
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def _encodable(field: str, text: str, what: str) -> str:
    if (problem := utf8_error(text)) is not None:
        raise FilterError(field, f"{what} {problem}")
    return text


@dataclass(frozen=True)
class FilterLimits:
    """The settings' max_filters and max_filter_values."""

    max_filters: int
    max_values: int


def _kind(field: str) -> IndexKind | None:
    """The indexed kind of a field, None for sidecar metadata whose type the value decides."""
    _encodable(field, field, "the field name")
    if field in FILTERABLE_FIELDS:
        return FILTERABLE_FIELDS[field]
    if field.startswith(META_PREFIX) and is_meta_key(field.removeprefix(META_PREFIX)):
        return None
    raise FilterError(
        field,
        f"unknown filter field {_shown(field)}; filterable: "
        f"{', '.join(sorted(FILTERABLE_FIELDS))}, or {META_PREFIX}<key> for sidecar metadata "
        f"(<key>: {META_KEY_RULE})",
    )


_INT64 = (-(2**63), 2**63 - 1)


def _is_int(v: object) -> bool:
    """An integer the engine stores (64-bit); larger ones cannot be in any payload."""
    return isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1]


def _check_scalar(field: str, kind: IndexKind | None, value: object) -> Scalar:
    """A value `eq`/`any` can match: a keyword or an integer."""
    if kind not in ("keyword", "integer", None):
        raise FilterError(field, f"a {kind} field takes a range (gte, gt, lte, lt), not eq/any")
    if isinstance(value, bool):
        # qdrant-edge-py turns a boolean match value into the integer 0 or 1, which matches
        # integers and not booleans; refuse rather than answer wrongly on one backend.
        raise FilterError(field, "boolean values cannot be matched; store them as strings")
    if kind == "keyword":
        ok, expected = isinstance(value, str), "a string"
    elif kind == "integer":
        ok, expected = _is_int(value), "a 64-bit integer"
    else:
        ok, expected = isinstance(value, str) or _is_int(value), "a string or a 64-bit integer"
    if not ok:
        raise FilterError(field, f"{_shown(value)} is not {expected}")
    if isinstance(value, str):
        _encodable(field, value, "the value")
    return value  # type: ignore[return-value]


def parse_datetime(value: str) -> datetime:
    """ISO-8601, naive taken as UTC (payload datetimes are written in UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bound(field: str, kind: IndexKind | None, value: object) -> float | datetime:
    if kind == "keyword":
        raise FilterError(field, "a keyword field takes eq or any, not a range")
    if kind in ("integer", "float") or (kind is None and not isinstance(value, str)):
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value
        raise FilterError(field, f"range bound {_shown(value)} is not a finite number")
    if isinstance(value, str):
        _encodable(field, value, "the range bound")
        try:
            return parse_datetime(value)
        except ValueError:
            pass
    raise FilterError(field, f"range bound {_shown(value)} is not an ISO-8601 datetime")


def to_field_filter(field: str, ops: Mapping[str, Any], max_values: int) -> FieldFilter:
    """One condition: exactly one of `eq`, `any`, or a set of range bounds."""
    kind = _kind(field)
    unknown = sorted(set(ops) - set(OPERATORS))
    if unknown:
        raise FilterError(
            field, f"unknown operator {_shown(unknown[0])}; use one of {', '.join(OPERATORS)}"
        )
    bounds = {op: ops[op] for op in RANGE_OPS if ops.get(op) is not None}
    given = [op for op in ("eq", "any") if ops.get(op) is not None] + (["range"] if bounds else [])
    if len(given) != 1:
        raise FilterError(field, "give exactly one of eq, any, or range bounds (gte, gt, lte, lt)")
    if given[0] == "eq":
        return FieldFilter(field, "eq", _check_scalar(field, kind, ops["eq"]))
    if given[0] == "any":
        values = ops["any"]
        if not isinstance(values, list) or not values or len(values) > max_values:
            raise FilterError(field, f"any takes a list of 1 to {max_values} values")
        checked = tuple(_check_scalar(field, kind, v) for v in values)
        if len({type(v) for v in checked}) > 1:
            raise FilterError(field, "any mixes value types")
        return FieldFilter(field, "any", checked)
    checked_bounds = {op: _bound(field, kind, v) for op, v in bounds.items()}
    try:
        return FieldFilter(field, "range", Range(**checked_bounds))
    except ValueError as exc:  # mixed datetimes and numbers
        raise FilterError(field, str(exc)) from None


def to_field_filters(
    conditions: Sequence[tuple[str, Mapping[str, Any]]], limits: FilterLimits
) -> tuple[FieldFilter, ...]:
    """All conditions (they must all hold), within the request limits."""
    if len(conditions) > limits.max_filters:
        raise FilterError("filters", f"at most {limits.max_filters} filter conditions")
    return tuple(to_field_filter(f, ops, limits.max_values) for f, ops in conditions)


# --------------------------------------------------------------------------- in-Python evaluation


def _values(payload: Mapping[str, Any], field: str) -> list[Any]:
    """The payload value(s) at a dotted path; an array matches when any element does."""
    value: Any = payload
    for part in field.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return []
        value = value[part]
    return value if isinstance(value, list) else [value]


def _same(a: object, b: object) -> bool:
    return isinstance(a, bool) == isinstance(b, bool) and type(a) is not float and a == b


def _in_range(value: object, r: Range) -> bool:
    if r.is_datetime:
        if not isinstance(value, str):
            return False
        try:
            v: Any = parse_datetime(value)
        except ValueError:
            return False
    elif isinstance(value, int | float) and not isinstance(value, bool):
        v = value
    else:
        return False
    return (
        (r.gte is None or v >= r.gte)
        and (r.gt is None or v > r.gt)
        and (r.lte is None or v <= r.lte)
        and (r.lt is None or v < r.lt)
    )


def _holds(f: FieldFilter, value: object) -> bool:
    if f.op == "eq":
        return _same(value, f.value)
    if f.op == "any":
        return any(_same(value, v) for v in f.value)  # type: ignore[union-attr]
    return _in_range(value, f.value)  # type: ignore[arg-type]


def matches(payload: Mapping[str, Any], filters: Sequence[FieldFilter]) -> bool:
    """True when every condition holds for the payload, as the engine would decide it."""
    return all(any(_holds(f, v) for v in _values(payload, f.field)) for f in filters)
