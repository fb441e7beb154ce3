"""Property-based tests (hypothesis): whatever a client sends, filters and request bodies either
work or are refused with a reason naming the field; nothing reaches a 500 or another tenant.

The filter properties run without the engine; the HTTP properties run against the real app over a
small two-tenant index (the real model and the embedded engine).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.embedding import Embedder
from core.index import FieldFilter, Range
from core.index.schema import FILTERABLE_FIELDS
from retrieval.filters import OPERATORS, FilterError, FilterLimits, matches, to_field_filters
from tests.support.api_env import ApiEnv, prepare_runtime, running_app

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["2024-01-01", "2024-02-30", "2024-01-01T00:00:00+25:00", "9999-12-31"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
# Edge values a JSON body can carry (Python's parser accepts NaN and Infinity).
edge_numbers = st.sampled_from(
    [float("nan"), float("inf"), -float("inf"), 2**63, -(2**63) - 1, 2**70]
)
field_names = st.one_of(
    st.sampled_from(sorted(FILTERABLE_FIELDS)),
    st.sampled_from(["tenant_id", "meta.year", "meta.", "meta.a.b", "meta.tenant_id", "text"]),
    st.text(max_size=20),
)
operator_maps = st.one_of(
    st.dictionaries(
        st.sampled_from(OPERATORS), edge_numbers | json_scalars, min_size=1, max_size=2
    ),
    st.dictionaries(st.sampled_from(OPERATORS) | st.text(max_size=6), json_values, max_size=4),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(field_names, operator_maps), max_size=5))
def test_any_filter_is_either_parsed_or_refused_naming_its_field(conditions: list) -> None:
    try:
        parsed = to_field_filters(conditions, FilterLimits(max_filters=4, max_values=3))
    except FilterError as exc:
        assert exc.field in {f for f, _ in conditions} | {"filters"}
        assert exc.reason
        return
    assert len(parsed) == len(conditions) <= 4
    for f in parsed:
        assert f.field != "tenant_id"  # the tenant comes from the key, never from a filter
        # What the engine can compare: finite range bounds, and 64-bit integers to match.
        if f.op == "range":
            bounds = [f.value.gte, f.value.gt, f.value.lte, f.value.lt]
            assert all(math.isfinite(b) for b in bounds if isinstance(b, float)), f
        else:
            values = f.value if f.op == "any" else (f.value,)
            assert all(-(2**63) <= v < 2**63 for v in values if isinstance(v, int)), f
        # Every parsed condition can be evaluated on any payload without raising.
        matches({"doc_type": "pdf", "size": 3, "meta": {"year": 2020}}, [f])


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.integers(min_value=-(2**40), max_value=2**40),
)
def test_range_matching_is_the_interval(value: int, low: int, high: int) -> None:
    f = FieldFilter("size", "range", Range(gte=low, lt=high))
    assert matches({"size": value}, [f]) == (low <= value < high)


# --------------------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[ApiEnv]:
    runtime, keys = prepare_runtime(tmp_path_factory.mktemp("props"), embedder)
    with running_app(runtime, keys) as env:
        yield env


search_bodies = st.fixed_dictionaries(
    {},
    optional={
        "query": st.text(max_size=40) | json_values,
        "top_k": st.integers(min_value=-5, max_value=200) | json_values,
        "mode": st.sampled_from(["hybrid", "dense", "bm25", "graph", "HYBRID"]) | json_values,
        "filters": st.lists(
            st.fixed_dictionaries({"field": field_names}).flatmap(
                lambda base: operator_maps.map(lambda ops: {**ops, **base})
            ),
            max_size=3,
        )
        | json_values,
        "rerank": st.booleans() | json_values,
        "rerank_top_n": st.integers(min_value=-1, max_value=80) | json_values,
        "explain": st.booleans(),
        "tenant": st.just("globex"),
        "tenant_id": st.just("globex"),
    },
)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(search_bodies)
def test_any_search_body_is_answered_or_refused_with_a_reason(env: ApiEnv, body: dict) -> None:
    # Sent as Python writes it: NaN and Infinity included, which strict JSON encoders refuse.
    headers = {**env.auth("acme"), "Content-Type": "application/json"}
    r = env.client.post("/v1/search", content=json.dumps(body), headers=headers)
    assert r.status_code in (200, 400, 422), (body, r.text)
    if r.status_code != 200:
        error = r.json()["error"]
        assert error["code"] and error["reason"]
        return
    # Whatever the body says (even "tenant": "globex"), only the key's tenant answers.
    assert all(h["doc_id"].startswith("tenants/acme/") for h in r.json()["results"])


def test_property_fixture_holds_both_tenants(env: ApiEnv) -> None:
    """The HTTP property above is only meaningful if the other tenant has matching chunks."""
    assert env.chunk_ids("acme") and env.chunk_ids("globex")
