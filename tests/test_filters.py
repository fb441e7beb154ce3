"""Filter translation, and the in-Python evaluation agreeing with the engine's own filtering.

`matches` decides which ids from an outside leg (the graph) pass a request's filters; it must
agree with what the engine returns for the same filters, so it is checked against the real
engine on both backends over payloads of every shape a chunk can carry.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from core.index import ChunkIndex, FieldFilter, Range, open_index
from core.types import IndexedChunk, TenantScope
from retrieval.filters import FilterError, FilterLimits, matches, to_field_filter, to_field_filters
from tests.support.engine import SHIPPED, engine_query
from tests.support.settings import make_settings

MAX_VALUES = SHIPPED.api.max_filter_values

DIM = 8
SCOPE = TenantScope("acme")
BASE = datetime(2024, 1, 1, tzinfo=UTC)


def test_conditions_become_engine_filters() -> None:
    assert to_field_filter("doc_type", {"eq": "pdf"}, MAX_VALUES) == FieldFilter(
        "doc_type", "eq", "pdf"
    )
    assert to_field_filter("size", {"any": [1, 2]}, MAX_VALUES) == FieldFilter(
        "size", "any", (1, 2)
    )
    assert to_field_filter("size", {"gte": 1, "lt": 2.5}, MAX_VALUES) == FieldFilter(
        "size", "range", Range(gte=1, lt=2.5)
    )
    naive = to_field_filter("modified_at", {"gte": "2024-01-01"}, MAX_VALUES)
    assert naive.value == Range(gte=BASE)
    zoned = to_field_filter("modified_at", {"lt": "2024-01-01T02:00:00+02:00"}, MAX_VALUES)
    assert zoned.value.lt == BASE
    assert to_field_filter("meta.year", {"eq": 2021}, MAX_VALUES) == FieldFilter(
        "meta.year", "eq", 2021
    )
    assert to_field_filter("meta.when", {"gt": "2024-01-01T00:00Z"}, MAX_VALUES).value == Range(
        gt=BASE
    )


def test_errors_name_the_field() -> None:
    with pytest.raises(FilterError) as info:
        to_field_filter("tenant_id", {"eq": "globex"}, MAX_VALUES)
    assert info.value.field == "tenant_id"
    assert "unknown filter field" in info.value.reason
    with pytest.raises(FilterError) as info:
        to_field_filter("author", {"any": ["a"] * 3}, max_values=2)
    assert info.value.field == "author"
    with pytest.raises(FilterError) as info:
        to_field_filters(
            [("doc_type", {"eq": "pdf"})] * 3, FilterLimits(max_filters=2, max_values=100)
        )
    assert info.value.field == "filters"


@pytest.mark.parametrize(
    ("field", "ops", "named"),
    [
        ("doc_id", {"eq": "\ud800"}, "doc_id"),
        ("author", {"any": ["ok", "x\udfff"]}, "author"),
        ("meta.k", {"eq": "\ud83d"}, "meta.k"),
        ("modified_at", {"lt": "2024\ud800"}, "modified_at"),
        ("meta.\ud800", {"eq": "x"}, "meta.\\ud800"),
    ],
)
def test_strings_utf8_cannot_encode_are_refused_naming_the_field(
    field: str, ops: dict, named: str
) -> None:
    """A lone surrogate would otherwise reach the engine binding and fail there (a 500)."""
    with pytest.raises(FilterError) as info:
        to_field_filter(field, ops, MAX_VALUES)
    assert info.value.field == named and "UTF-8" in info.value.reason
    info.value.field.encode("utf-8")  # the error itself can be sent


def _payloads(n: int = 60) -> dict[str, dict]:
    rnd = random.Random(7)
    out = {}
    for i in range(n):
        meta: dict = {"year": rnd.choice([2019, 2020, 2021, 2022]), "score": rnd.random()}
        if i % 3:
            meta["tags"] = rnd.sample(["red", "green", "blue"], k=rnd.randint(1, 2))
        if i % 4:
            meta["project"] = rnd.choice(["apollo", "gemini"])
        if i % 5 == 0:
            meta["when"] = (BASE + timedelta(days=i)).isoformat()
        payload = {
            "tenant_id": SCOPE.tenant_id,
            "doc_id": f"doc{i % 7}",
            "doc_type": rnd.choice(["pdf", "md", "txt"]),
            "size": rnd.randint(0, 1000),
            "modified_at": (BASE + timedelta(hours=i * 7)).isoformat(),
            "text": f"chunk {i}",
            "meta": meta,
        }
        if i % 2:
            payload["author"] = rnd.choice(["Ada", "Grace"])
        out[str(uuid.UUID(int=i + 1))] = payload
    return out


CONDITIONS: list[list[tuple[str, dict]]] = [
    [("doc_type", {"eq": "pdf"})],
    [("doc_type", {"any": ["md", "txt"]})],
    [("author", {"eq": "Ada"})],
    [("size", {"gte": 200, "lt": 700})],
    [("size", {"any": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]})],
    [("modified_at", {"gte": "2024-01-03", "lte": "2024-01-10T12:00:00Z"})],
    [("meta.year", {"eq": 2021})],
    [("meta.year", {"gt": 2019, "lt": 2022})],
    [("meta.score", {"gte": 0.25, "lte": 0.75})],
    [("meta.tags", {"eq": "red"})],
    [("meta.tags", {"any": ["green", "blue"]})],
    [("meta.project", {"any": ["gemini"]})],
    [("meta.when", {"gte": "2024-01-20T00:00:00Z"})],
    [("meta.absent", {"eq": "x"})],
    [("doc_type", {"eq": "pdf"}), ("meta.project", {"eq": "apollo"}), ("size", {"lt": 800})],
]


@pytest.fixture(scope="module", params=["edge", "server"])
def index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ChunkIndex, dict[str, dict]]]:
    settings = make_settings(tmp_path_factory.mktemp(request.param), request.param)
    payloads = _payloads()
    rng = np.random.default_rng(3)
    ix = open_index(settings, DIM)
    ix.upsert(
        [
            IndexedChunk(pid, rng.standard_normal(DIM).astype(np.float32), p)
            for pid, p in payloads.items()
        ]
    )
    yield ix, payloads
    ix.close()


@pytest.mark.parametrize("conditions", CONDITIONS, ids=lambda c: "+".join(f for f, _ in c))
def test_matches_agrees_with_the_engine(
    index: tuple[ChunkIndex, dict[str, dict]], conditions: list[tuple[str, dict]]
) -> None:
    ix, payloads = index
    filters = to_field_filters(
        conditions, FilterLimits(SHIPPED.api.max_filters, SHIPPED.api.max_filter_values)
    )
    query = engine_query(SCOPE, limit=1000, dense=np.ones(DIM, dtype=np.float32), filters=filters)
    engine = {h.id for h in ix.search(query)}
    python = {pid for pid, p in payloads.items() if matches(p, filters)}
    assert engine == python
    if conditions[0][0] != "meta.absent":
        assert 0 < len(python) < len(payloads)


def test_matches_does_not_confuse_types() -> None:
    payload = {"meta": {"flag": True, "n": 1, "s": "1", "f": 1.0}}
    assert not matches(payload, (FieldFilter("meta.flag", "eq", 1),))
    assert not matches(payload, (FieldFilter("meta.s", "eq", 1),))
    assert matches(payload, (FieldFilter("meta.n", "eq", 1),))
    assert matches(payload, (FieldFilter("meta.f", "range", Range(gte=1)),))
    assert not matches(payload, (FieldFilter("meta.s", "range", Range(gte=0)),))
