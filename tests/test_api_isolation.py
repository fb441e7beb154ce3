"""Tenant isolation through the real HTTP app, on both index backends.

Two tenants hold overlapping documents (tests/support/api_env.py). Under every mode, filter and key
a tenant sees only its own chunks, including the filters that name the other tenant's documents
and an outside leg that returns every tenant's chunk ids.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from core.embedding import Embedder
from core.types import InvalidTenantError, TenantScope
from tests.support.api_env import (
    TENANTS,
    ApiEnv,
    EveryChunkLeg,
    doc_ids,
    prepare_runtime,
    running_app,
)
from tests.support.engine import engine_query

FILTERS: dict[str, list[dict[str, object]]] = {
    "none": [],
    "doc_type": [{"field": "doc_type", "any": ["md", "txt", "pdf", "docx", "html"]}],
    "other_tenants_doc_ids": [{"field": "doc_id", "any": [*doc_ids("acme"), *doc_ids("globex")]}],
    "shared_path": [
        {
            "field": "doc_id",
            "any": ["tenants/acme/shared/handbook.md", "tenants/globex/shared/handbook.md"],
        }
    ],
    "sidecar": [{"field": "meta.project", "eq": "apollo"}],
    "sidecar_range": [{"field": "meta.year", "gte": 2000, "lte": 2030}],
    "modified_at": [{"field": "modified_at", "gte": "2000-01-01T00:00:00Z"}],
    "size": [{"field": "size", "gte": 1}],
}
QUERIES = ["fox", "employee vacation policy and security badges", "whale ship revenue coffee"]


@pytest.fixture(scope="module", params=["edge", "server"])
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[ApiEnv]:
    # The careless outside leg takes part in `hybrid` too, so isolation is proven for both modes.
    runtime, keys = prepare_runtime(
        tmp_path_factory.mktemp(request.param), embedder, request.param, graph_in_hybrid=True
    )
    with running_app(runtime, keys, extra_legs=[EveryChunkLeg(runtime)]) as env:
        yield env


@pytest.mark.parametrize("role", ["reader", "admin"])
@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25", "graph"])
@pytest.mark.parametrize("filter_name", sorted(FILTERS))
def test_tenants_see_only_their_own_chunks(
    env: ApiEnv, mode: str, filter_name: str, role: str
) -> None:
    own_docs = {t: set(doc_ids(t)) for t in TENANTS}
    for tenant in TENANTS:
        own = env.chunk_ids(tenant)
        found_any = False
        for query in QUERIES:
            body = {"query": query, "top_k": 100, "mode": mode, "filters": FILTERS[filter_name]}
            r = env.client.post("/v1/search", json=body, headers=env.auth(tenant, role))
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert {h["id"] for h in results} <= own
            assert {h["doc_id"] for h in results} <= own_docs[tenant]
            found_any |= bool(results)
        assert found_any, f"{tenant} found nothing in {mode} mode with {filter_name}"


def test_overlapping_document_is_found_by_each_tenant_as_its_own(env: ApiEnv) -> None:
    # Dense only: in hybrid mode this app also fuses the careless leg's arbitrary order.
    body = {"query": "vacation days carry over", "top_k": 3, "mode": "dense"}
    for tenant in TENANTS:
        r = env.client.post("/v1/search", json=body, headers=env.auth(tenant))
        top = r.json()["results"][0]
        assert top["doc_id"] == f"tenants/{tenant}/shared/handbook.md"
        assert top["id"] in env.chunk_ids(tenant)
        assert "Vacation policy" in top["text"]


def test_graph_mode_fuses_the_outside_leg_within_the_tenant(env: ApiEnv) -> None:
    """The careless leg ranks every tenant's chunks; the caller still gets only its own."""
    body = {"query": "fox", "top_k": 100, "mode": "graph"}
    r = env.client.post("/v1/search", json=body, headers=env.auth("acme"))
    results = r.json()["results"]
    assert {h["id"] for h in results} == env.chunk_ids("acme")
    assert all(set(h["leg_ranks"]) == {"graph"} for h in results)


@pytest.mark.parametrize("mode", ["graph", "hybrid"])
def test_outside_leg_ids_obey_the_filters(env: ApiEnv, mode: str) -> None:
    body = {
        "query": "fox",
        "top_k": 100,
        "mode": mode,
        "filters": [{"field": "meta.project", "eq": "apollo"}, {"field": "doc_type", "eq": "txt"}],
    }
    r = env.client.post("/v1/search", json=body, headers=env.auth("globex"))
    results = r.json()["results"]
    assert {h["doc_id"] for h in results} == {"tenants/globex/fox.txt"}
    assert all("graph" in h["leg_ranks"] for h in results)


def test_document_endpoints_never_reveal_another_tenants_documents(env: ApiEnv) -> None:
    listed = env.client.get("/v1/documents", headers=env.auth("acme")).json()["documents"]
    assert {d["doc_id"] for d in listed} == set(doc_ids("acme"))
    other = "tenants/globex/whale.docx"
    for method in ("GET", "DELETE"):
        r = env.client.request(method, f"/v1/documents/{other}", headers=env.auth("acme", "admin"))
        missing = env.client.request(
            method, "/v1/documents/tenants/acme/nope.txt", headers=env.auth("acme", "admin")
        )
        assert r.status_code == missing.status_code == 404
        assert r.json() == missing.json()
    assert env.client.get(f"/v1/documents/{other}", headers=env.auth("globex")).status_code == 200


def test_status_counts_only_the_callers_tenant(env: ApiEnv) -> None:
    for tenant in TENANTS:
        status = env.client.get("/v1/status", headers=env.auth(tenant)).json()
        assert status["tenant"] == tenant
        assert status["index_chunks"] == len(env.chunk_ids(tenant))
        assert status["documents"] == {"indexed": len(doc_ids(tenant))}


def test_a_request_cannot_name_another_tenant(env: ApiEnv) -> None:
    body = {"query": "fox", "tenant_id": "globex"}
    r = env.client.post("/v1/search", json=body, headers=env.auth("acme"))
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "tenant_id"
    filt = {"query": "fox", "filters": [{"field": "tenant_id", "eq": "globex"}]}
    r = env.client.post("/v1/search", json=filt, headers=env.auth("acme"))
    assert r.status_code == 422
    assert r.json()["error"] == {
        "code": "invalid_filter",
        "reason": r.json()["error"]["reason"],
        "field": "tenant_id",
    }


def test_an_engine_query_cannot_be_built_without_a_tenant_scope() -> None:
    vector = np.ones(4, dtype=np.float32)
    for scope in (None, "acme", {"tenant_id": "acme"}):
        with pytest.raises(TypeError, match="TenantScope"):
            engine_query(scope=scope, limit=5, dense=vector)  # type: ignore[arg-type]
    for bad in ("", "*", "../acme", "acme globex", "a" * 65):
        with pytest.raises(InvalidTenantError):
            TenantScope(bad)


def test_the_tenant_filter_is_inside_the_engine_query() -> None:
    """The filter each backend sends carries the tenant as its first must-condition."""
    from core.index.dialect import scoped_filter
    from core.index.edge import DIALECT as EDGE
    from core.index.query import FieldFilter
    from core.index.server import DIALECT as SERVER

    for dialect in (EDGE, SERVER):
        flt = scoped_filter(TenantScope("acme"), (FieldFilter("doc_type", "eq", "pdf"),), dialect)
        first = flt.must[0]
        assert first.key == "tenant_id"
        assert first.match.value == "acme"
