"""The search API through the real app: results, filters, limits, auth, keys, documents, status,
metrics, reranking and answers, on a real index holding a real two-tenant corpus.

Tests run in file order on one app; the document-deletion test goes last because it changes
the corpus.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sentence_transformers import CrossEncoder

from core.embedding import Embedder
from core.types import TenantScope
from tests.support.api_env import (
    ADMIN_KEY,
    ApiEnv,
    doc_ids,
    prepare_runtime,
    running_app,
)
from tests.support.llm import LLM_URL, fake_llm
from tests.support.models import build_untrained_cross_encoder


class LlmRecorder:
    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return fake_llm(request)


@pytest.fixture(scope="module")
def cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    return build_untrained_cross_encoder(embedder.model_name, tmp_path_factory.mktemp("ce"))


@pytest.fixture(scope="module")
def llm() -> LlmRecorder:
    return LlmRecorder()


@pytest.fixture(scope="module")
def env(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    cross_encoder_dir: Path,
    llm: LlmRecorder,
) -> Iterator[ApiEnv]:
    runtime, keys = prepare_runtime(
        tmp_path_factory.mktemp("api"),
        embedder,
        reranker_model=str(cross_encoder_dir),
        llm_base_url=LLM_URL,
        llm_model="stub-model",
        max_body_bytes=4096,
    )
    with running_app(runtime, keys, transport=httpx.MockTransport(llm)) as env:
        yield env


def search(env: ApiEnv, tenant: str = "acme", **body: object) -> dict:
    r = env.client.post("/v1/search", json=body, headers=env.auth(tenant))
    assert r.status_code == 200, r.text
    return r.json()


def error(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    return r.json()["error"]


# --------------------------------------------------------------------------- results


def test_hybrid_results_carry_everything_a_client_needs(env: ApiEnv) -> None:
    out = search(env, query="red fox hunting rodents", top_k=5, explain=True)
    results = out["results"]
    top = results[0]
    assert top["doc_id"] == "tenants/acme/fox.txt"
    assert "Red foxes hunt" in top["text"]
    assert top["source"] == "tenants/acme/fox.txt"  # relative to the bucket, never its path
    assert top["metadata"]["doc_type"] == "txt"
    sidecar = {"project": "apollo", "year": 2021, "confidential": True}
    assert sidecar.items() <= top["metadata"]["meta"].items()
    assert "tenant_id" not in top["metadata"]
    assert set(top["leg_ranks"]) == {"dense", "bm25"}
    assert top["rerank_score"] is None
    scores = [h["score"] for h in results]
    assert scores == sorted(scores, reverse=True)
    # RRF: 1/(60 + rank) per leg.
    expected = sum(1 / (60 + r) for r in top["leg_ranks"].values())
    assert top["score"] == pytest.approx(expected, rel=1e-4)
    assert {"embed", "engine", "total"} <= set(out["timings_ms"])
    assert out["timings_ms"]["total"] >= out["timings_ms"]["engine"] > 0


def test_leg_ranks_of_engine_fused_hits_are_opt_in(env: ApiEnv) -> None:
    plain = search(env, query="red fox hunting rodents", top_k=5)["results"]
    explained = search(env, query="red fox hunting rodents", top_k=5, explain=True)["results"]
    assert all(h["leg_ranks"] == {} for h in plain)
    assert [h["id"] for h in plain] == [h["id"] for h in explained]
    assert all(h["leg_ranks"] for h in explained)


def test_bm25_mode_does_not_embed_the_query(env: ApiEnv) -> None:
    out = search(env, query="inverter factory", mode="bm25")
    assert out["results"][0]["doc_id"] == "tenants/acme/report.pdf"
    assert all(set(h["leg_ranks"]) == {"bm25"} for h in out["results"])
    assert "embed" not in out["timings_ms"]


@pytest.mark.parametrize(
    ("filters", "expected_docs"),
    [
        ([{"field": "doc_type", "eq": "pdf"}], {"tenants/acme/report.pdf"}),
        (
            [{"field": "doc_type", "any": ["html", "md"]}],
            {"tenants/acme/notes.html", "tenants/acme/shared/handbook.md"},
        ),
        ([{"field": "author", "eq": "Grace Hopper"}], {"tenants/acme/report.pdf"}),
        ([{"field": "meta.project", "eq": "apollo"}], {"tenants/acme/fox.txt"}),
        ([{"field": "meta.year", "gte": 2022}], {"tenants/acme/report.pdf"}),
        ([{"field": "meta.year", "gt": 2020, "lt": 2022}], {"tenants/acme/fox.txt"}),
        ([{"field": "size", "lt": 0}], set()),
        ([{"field": "modified_at", "gte": "2999-01-01"}], set()),
        ([{"field": "modified_at", "lt": "2999-01-01T00:00:00+00:00"}], set(doc_ids("acme"))),
        (
            [
                {"field": "meta.project", "any": ["apollo", "gemini"]},
                {"field": "doc_type", "eq": "pdf"},
            ],
            {"tenants/acme/report.pdf"},
        ),
    ],
)
@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_filters_select_documents_by_metadata(
    env: ApiEnv, filters: list[dict], expected_docs: set[str], mode: str
) -> None:
    query = "fox revenue coffee handbook vacation"
    out = search(env, query=query, top_k=100, mode=mode, filters=filters)
    found = {h["doc_id"] for h in out["results"]}
    if mode == "bm25":  # BM25 only finds documents sharing a query term
        assert found <= expected_docs
    else:
        assert found == expected_docs


@pytest.mark.parametrize(
    ("condition", "field", "reason"),
    [
        ({"field": "colour", "eq": "red"}, "colour", "unknown filter field"),
        ({"field": "doc_type", "ne": "pdf"}, "doc_type", "unknown operator 'ne'"),
        ({"field": "doc_type", "gte": 3}, "doc_type", "keyword field takes eq or any"),
        ({"field": "modified_at", "eq": "2024-01-01"}, "modified_at", "takes a range"),
        ({"field": "modified_at", "gte": "last tuesday"}, "modified_at", "not an ISO-8601"),
        ({"field": "size", "eq": "big"}, "size", "not a 64-bit integer"),
        ({"field": "size", "gte": "10"}, "size", "not a finite number"),
        ({"field": "meta.a-b", "eq": 1}, "meta.a-b", "unknown filter field"),
        ({"field": "meta.year", "any": []}, "meta.year", "any takes a list"),
        ({"field": "meta.year", "any": [1, "x"]}, "meta.year", "mixes value types"),
        ({"field": "meta.year", "gte": 1, "lt": "2024-01-01"}, "meta.year", "mixes datetimes"),
        ({"field": "meta.confidential", "eq": True}, "meta.confidential", "boolean"),
        ({"field": "doc_type", "eq": "pdf", "any": ["md"]}, "doc_type", "exactly one"),
        ({"field": "doc_type"}, "doc_type", "exactly one"),
        ({"field": "doc_type", "eq": {"nested": "x"}}, "doc_type", "valid"),
        ({"field": "author", "any": [["deep"]]}, "author", "valid"),
        ({"eq": "pdf"}, "filters.0.field", "Field required"),
    ],
)
def test_invalid_filters_are_422_naming_the_field(
    env: ApiEnv, condition: dict, field: str, reason: str
) -> None:
    r = env.client.post(
        "/v1/search", json={"query": "fox", "filters": [condition]}, headers=env.auth("acme")
    )
    err = error(r, 422)
    assert err["field"] == field
    assert reason in err["reason"]
    assert err["code"] in ("invalid_filter", "invalid_request")


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
@pytest.mark.parametrize("field", ["meta.year\n", "doc_type\n"])
def test_a_filter_field_with_a_trailing_newline_is_422_naming_it(
    env: ApiEnv, mode: str, field: str
) -> None:
    """Issue 23: `$` matched before the newline, the name passed and the engine raised (500)."""
    body = {"query": "fox", "mode": mode, "filters": [{"field": field, "eq": "x"}]}
    err = error(env.client.post("/v1/search", json=body, headers=env.auth("acme")), 422)
    assert (err["code"], err["field"]) == ("invalid_filter", field)
    assert "unknown filter field" in err["reason"]


def test_too_many_filters_are_rejected(env: ApiEnv) -> None:
    filters = [{"field": "doc_type", "eq": "pdf"}] * 17
    r = env.client.post(
        "/v1/search", json={"query": "fox", "filters": filters}, headers=env.auth("acme")
    )
    assert error(r, 422) == {
        "code": "invalid_filter",
        "reason": "at most 16 filter conditions",
        "field": "filters",
    }


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"query": "x" * 2001}, "query", "query_too_long"),
        ({"query": "   "}, "query", "empty_query"),
        ({"query": ""}, "query", "invalid_request"),
        ({"query": "fox", "top_k": 0}, "top_k", "invalid_request"),
        ({"query": "fox", "top_k": 101}, "top_k", "invalid_request"),
        ({"query": "fox", "rerank": True, "rerank_top_n": 51}, "rerank_top_n", "invalid_request"),
        ({"query": "fox", "mode": "magic"}, "mode", "invalid_request"),
        ({"query": "fox", "colour": "red"}, "colour", "invalid_request"),
        ({"top_k": 3}, "query", "invalid_request"),
    ],
)
def test_request_limits_are_422_with_the_field(
    env: ApiEnv, body: dict, field: str, code: str
) -> None:
    err = error(env.client.post("/v1/search", json=body, headers=env.auth("acme")), 422)
    assert (err["field"], err["code"]) == (field, code)


def test_malformed_json_is_a_machine_readable_422(env: ApiEnv) -> None:
    r = env.client.post(
        "/v1/search",
        content=b'{"query": ',
        headers={**env.auth("acme"), "content-type": "application/json"},
    )
    assert error(r, 422)["code"] == "invalid_json"


def test_a_body_not_sent_as_json_is_a_415_naming_the_content_types(env: ApiEnv) -> None:
    """`curl -d '{"query": "fox"}' URL` sends application/x-www-form-urlencoded, which got a 422
    saying a dictionary was expected, as did a body without a Content-Type. Every route with a
    JSON body now answers 415 naming the type expected and the one received; application/json
    (with a charset too) works as before."""
    operator = {"Authorization": f"Bearer {ADMIN_KEY}"}
    routes = [
        (method, route.path_format.replace("{", "").replace("}", ""))  # any parameter will do
        for route in iter_route_contexts(env.client.app.routes)  # type: ignore[attr-defined]
        if getattr(route.original_route, "body_field", None) is not None
        for method in route.methods
    ]
    assert ("POST", "/v1/search") in routes and ("POST", "/v1/keys") in routes
    form = "application/x-www-form-urlencoded"
    for method, path in routes:
        for content_type in (form, None):
            headers = {**operator, **({"Content-Type": content_type} if content_type else {})}
            r = env.client.request(method, path, content=b'{"query": "fox"}', headers=headers)
            err = error(r, 415)
            assert err["code"] == "unsupported_media_type", (method, path)
            received = f"Content-Type '{content_type}'" if content_type else "no Content-Type"
            assert "Content-Type: application/json" in err["reason"], err
            assert received in err["reason"], err
    for content_type in ("application/json", "application/json; charset=utf-8"):
        headers = {**env.auth("acme"), "Content-Type": content_type}
        r = env.client.post("/v1/search", content=b'{"query": "fox", "top_k": 1}', headers=headers)
        assert r.status_code == 200 and len(r.json()["results"]) == 1, (content_type, r.text)


def test_oversized_bodies_are_413_declared_or_streamed(env: ApiEnv) -> None:
    big = json.dumps({"query": "fox " * 2000}).encode()
    r = env.client.post(
        "/v1/search", content=big, headers={**env.auth("acme"), "content-type": "application/json"}
    )
    assert error(r, 413)["code"] == "body_too_large"
    streamed = env.client.post(
        "/v1/search",
        content=iter([big[:3000], big[3000:]]),
        headers={**env.auth("acme"), "content-type": "application/json"},
    )
    assert error(streamed, 413)["code"] == "body_too_large"


def test_unknown_routes_and_methods_use_the_error_shape(env: ApiEnv) -> None:
    assert error(env.client.get("/v1/nope"), 404)["code"] == "not_found"
    assert error(env.client.get("/v1/search"), 405)["code"] == "method_not_allowed"


# --------------------------------------------------------------------------- auth and keys


def test_missing_and_unknown_keys_get_the_same_401(env: ApiEnv) -> None:
    real = env.keys["acme:reader"]
    key_id = real.split("_")[1]
    attempts = [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "garbage"},
        {"X-API-Key": "rag_000000000000_" + "A" * 43},
        {"X-API-Key": f"rag_{key_id}_" + "A" * 43},  # a real key id with the wrong secret
        {"Authorization": f"Basic {real}"},
        {"Authorization": "Bearer nope"},
    ]
    bodies = set()
    for headers in attempts:
        r = env.client.post("/v1/search", json={"query": "fox"}, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        bodies.add(r.text)
    assert len(bodies) == 1
    assert json.loads(bodies.pop())["error"]["code"] == "unauthorized"


def test_every_search_and_refused_key_is_audited(env: ApiEnv) -> None:
    """Each search leaves a line with the key id and tenant (never the key or the query text);
    a refused key leaves one with the key id it claimed, so enumeration shows up."""
    from tests.support.audit import read_audit_log

    query = f"audited query {uuid.uuid4()}"
    digest = hashlib.sha256(query.encode()).hexdigest()
    key = env.keys["globex:reader"]
    ok = env.client.post(
        "/v1/search", json={"query": query, "top_k": 3}, headers={"X-API-Key": key}
    )
    assert ok.status_code == 200
    bad = {"query": query, "filters": [{"field": "colour", "eq": "red"}]}
    assert env.client.post("/v1/search", json=bad, headers={"X-API-Key": key}).status_code == 422
    forged = "rag_deadbeef0000_" + "A" * 43
    r = env.client.post("/v1/search", json={"query": query}, headers={"X-API-Key": forged})
    assert r.status_code == 401

    path = env.runtime.settings.audit_log_path
    entries = read_audit_log(path)
    mine = [e for e in entries if e.get("query_sha256") == digest]
    key_id = key.split("_")[1]
    assert [(e["event"], e["key_id"], e["tenant_id"], e["status"]) for e in mine] == [
        ("search", key_id, "globex", 200),
        ("search", key_id, "globex", 422),
    ]
    assert mine[0]["hits"] == len(ok.json()["results"]) and mine[1]["filters"] == ["colour"]
    refused = [e for e in entries if e["event"] == "auth_refused"]
    assert refused[-1]["claimed_key_id"] == "deadbeef0000"
    assert refused[-1]["path"] == "/v1/search"
    text = path.read_text()
    assert query not in text and key.split("_", 2)[2] not in text and "A" * 43 not in text


def test_keys_work_as_bearer_or_header(env: ApiEnv) -> None:
    key = env.keys["acme:reader"]
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        r = env.client.get("/v1/status", headers=headers)
        assert r.status_code == 200
        assert r.json()["tenant"] == "acme"


def test_readers_cannot_manage_keys_or_read_metrics(env: ApiEnv) -> None:
    for method, path in (("GET", "/v1/keys"), ("POST", "/v1/keys"), ("GET", "/metrics")):
        r = env.client.request(method, path, json={}, headers=env.auth("acme"))
        assert error(r, 403)["code"] == "forbidden"


def test_admin_creates_lists_and_revokes_keys(env: ApiEnv) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = env.client.post("/v1/keys", json={"tenant": "globex", "label": "ci"}, headers=admin)
    assert created.status_code == 201
    new = created.json()
    assert (new["tenant"], new["role"], new["label"]) == ("globex", "reader", "ci")
    status = env.client.get("/v1/status", headers={"X-API-Key": new["key"]}).json()
    assert status["tenant"] == "globex"

    listed = env.client.get("/v1/keys", params={"tenant": "globex"}, headers=admin).json()
    assert new["key_id"] in {k["key_id"] for k in listed}
    assert {k["tenant"] for k in listed} == {"globex"}
    assert new["key"].split("_", 2)[2] not in json.dumps(listed)

    assert env.client.delete(f"/v1/keys/{new['key_id']}", headers=admin).status_code == 204
    r = env.client.get("/v1/status", headers={"X-API-Key": new["key"]})
    assert error(r, 401)["code"] == "unauthorized"
    assert error(env.client.delete(f"/v1/keys/{new['key_id']}", headers=admin), 404)


def test_the_operator_is_warned_of_a_key_for_a_tenant_without_documents(env: ApiEnv) -> None:
    """A mistyped tenant gets its key (keys may come before documents), with a warning naming
    the tenants that have documents: for the operator key only, since a tenant admin's key names
    its own tenant and must learn nothing of the others."""
    operator = {"Authorization": f"Bearer {ADMIN_KEY}"}
    known = env.runtime.manifest.tenants()
    assert {"acme", "globex"} <= set(known)
    typo = env.client.post("/v1/keys", json={"tenant": "globx", "role": "admin"}, headers=operator)
    assert typo.status_code == 201, typo.text
    assert typo.json()["warning"] == (
        f"no documents for tenant 'globx' (known tenants: {', '.join(known)})"
    )
    known_tenant = env.client.post("/v1/keys", json={"tenant": "globex"}, headers=operator)
    assert known_tenant.status_code == 201 and known_tenant.json()["warning"] is None
    tenant_admin = {"X-API-Key": typo.json()["key"]}
    own = env.client.post("/v1/keys", json={}, headers=tenant_admin)
    assert own.status_code == 201 and own.json()["tenant"] == "globx"
    assert own.json()["warning"] is None
    for created in (typo, known_tenant, own):
        key_id = created.json()["key_id"]
        assert env.client.delete(f"/v1/keys/{key_id}", headers=operator).status_code == 204


def test_key_creation_rejects_bad_tenants_and_roles(env: ApiEnv) -> None:
    admin = env.auth("acme", "admin")
    operator = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for tenant in ("../globex", "acme\n"):
        bad_tenant = env.client.post("/v1/keys", json={"tenant": tenant}, headers=operator)
        assert error(bad_tenant, 422)["field"] == "tenant"
    bad_role = env.client.post("/v1/keys", json={"role": "root"}, headers=admin)
    assert error(bad_role, 422)["field"] == "role"


# --------------------------------------------------------------------------- documents, status


def test_documents_are_listed_in_pages(env: ApiEnv) -> None:
    pages, after = [], None
    while True:
        params = {"limit": 2, **({"after": after} if after else {})}
        page = env.client.get("/v1/documents", params=params, headers=env.auth("acme")).json()
        pages.append([d["doc_id"] for d in page["documents"]])
        after = page["next_after"]
        if after is None:
            break
    assert [d for p in pages for d in p] == sorted(doc_ids("acme"))
    assert all(len(p) <= 2 for p in pages)


def test_a_document_by_url_encoded_id(env: ApiEnv) -> None:
    doc = "tenants/acme/report.pdf"
    r = env.client.get(f"/v1/documents/{quote(doc, safe='')}", headers=env.auth("acme"))
    assert r.status_code == 200
    assert (r.json()["doc_id"], r.json()["status"]) == (doc, "indexed")
    assert r.json()["chunks"] >= 1


def test_status_reports_what_is_loaded(env: ApiEnv) -> None:
    status = env.client.get("/v1/status", headers=env.auth("acme")).json()
    assert status["reranker"]["available"] is True
    assert status["llm_configured"] is True
    assert status["documents"] == {"indexed": len(doc_ids("acme"))}
    # The last run covers every tenant: its times are the operator's to see, not a tenant's.
    assert status["last_run"] is None
    operator = env.client.get("/v1/status", headers={"X-API-Key": ADMIN_KEY}).json()
    assert operator["last_run"]["finished_at"] is not None
    index = status["index"]  # the served generation; counts across tenants stay hidden
    assert len(index["generation"]) == 16 and index["chunk_size"] == 48
    assert index["chunks"] is None and 0 <= index["indexed_percent"] <= 100


def test_health_and_docs_are_served(env: ApiEnv) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok"}
    assert env.client.get("/docs").status_code == 200
    paths = env.client.get("/openapi.json").json()["paths"]
    assert {"/v1/search", "/v1/answer", "/v1/documents/{doc_id}", "/v1/status"} <= set(paths)


# --------------------------------------------------------------------------- reranking


@pytest.mark.parametrize(
    "query", ["fox", "employee handbook badges", "solar revenue", "coffee brewing river"]
)
def test_reranking_orders_by_the_cross_encoder(
    env: ApiEnv, cross_encoder_dir: Path, query: str
) -> None:
    fused = search(env, query=query, top_k=8)["results"]
    reranked = search(env, query=query, top_k=8, rerank=True, rerank_top_n=8)["results"]
    assert {h["id"] for h in reranked} == {h["id"] for h in fused}
    model = CrossEncoder(str(cross_encoder_dir), device="cpu")
    scores = model.predict([(query, h["text"]) for h in fused])
    by_model = [h["id"] for _, h in sorted(zip(scores, fused, strict=True), key=lambda p: -p[0])]
    assert [h["id"] for h in reranked] == by_model
    own = {h["id"]: float(s) for h, s in zip(fused, scores, strict=True)}
    for h in reranked:
        assert h["rerank_score"] == pytest.approx(own[h["id"]], abs=1e-5)
        assert set(h["leg_ranks"]) <= {"dense", "bm25"}


def test_reranking_changes_the_fused_order_for_some_query(env: ApiEnv) -> None:
    queries = ["fox", "employee handbook badges", "solar revenue", "coffee brewing river"]
    changed = []
    for query in queries:
        fused = [h["id"] for h in search(env, query=query, top_k=8)["results"]]
        reranked = search(env, query=query, top_k=8, rerank=True, rerank_top_n=8)["results"]
        changed.append([h["id"] for h in reranked] != fused)
    assert any(changed)


def test_rerank_then_cut_to_top_k(env: ApiEnv) -> None:
    out = search(env, query="fox", top_k=2, rerank=True, rerank_top_n=10)
    assert len(out["results"]) == 2
    assert out["timings_ms"]["rerank"] > 0
    pool = search(env, query="fox", top_k=10, rerank=True, rerank_top_n=10)["results"]
    assert [h["id"] for h in out["results"]] == [h["id"] for h in pool[:2]]


# --------------------------------------------------------------------------- answers


def test_answer_cites_only_chunks_it_was_given(env: ApiEnv, llm: LlmRecorder) -> None:
    r = env.client.post(
        "/v1/answer",
        json={"query": "when do red foxes hunt?", "top_k": 3},
        headers=env.auth("acme"),
    )
    assert r.status_code == 200, r.text
    out = r.json()
    sources = [s["id"] for s in out["sources"]]
    assert len(sources) == 3
    assert [c["id"] for c in out["citations"]] == [sources[0]]
    assert out["citations"][0]["doc_id"] == out["sources"][0]["doc_id"]
    assert out["model"] == "stub-model"
    assert out["timings_ms"]["llm"] > 0
    sent = json.loads(llm.requests[-1].content)
    assert sent["model"] == "stub-model"
    system, user = sent["messages"]
    assert "untrusted" in system["content"]
    boundary = re.search(r"BEGIN SOURCE (\w+) id=", user["content"]).group(1)
    assert user["content"].count(f"END SOURCE {boundary}") == 3
    for source in out["sources"]:
        assert source["text"] in user["content"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("llm outage", "the LLM endpoint answered HTTP 500"),
        ("llm unreachable", "the LLM endpoint could not be reached (ConnectError)"),
        ("llm flood", "the LLM reply is larger than the 1048576-byte limit"),
    ],
)
def test_answer_reports_an_llm_failure_as_502_without_its_url(
    env: ApiEnv, query: str, reason: str
) -> None:
    r = env.client.post("/v1/answer", json={"query": query}, headers=env.auth("acme"))
    err = error(r, 502)
    assert err == {"code": "llm_failed", "reason": reason}
    assert "llm.test" not in r.text


# --------------------------------------------------------------------------- metrics, deletion


def test_metrics_count_requests_stages_and_index_size(env: ApiEnv) -> None:
    text = env.client.get("/metrics", headers={"X-API-Key": ADMIN_KEY}).text
    assert re.search(
        r'rag_http_requests_total\{method="POST",route="/v1/search",status="200"\} [1-9]', text
    )
    assert re.search(
        r'rag_http_requests_total\{method="POST",route="/v1/search",status="422"\} [1-9]', text
    )
    assert 'rag_search_stage_duration_seconds_count{stage="rerank"}' in text
    assert 'rag_search_stage_duration_seconds_count{stage="llm"}' in text
    acme = len(env.chunk_ids("acme"))
    assert f'rag_index_chunks{{tenant="acme"}} {float(acme)}' in text
    assert "/v1/documents/tenants" not in text  # routes are labelled by template


def test_admin_deletes_a_document_from_the_index(env: ApiEnv) -> None:
    doc = "tenants/acme/notes.html"
    before = search(env, query="coffee beans french press", top_k=100)["results"]
    assert doc in {h["doc_id"] for h in before}
    acme = TenantScope("acme")
    assert env.platform.graph_store.document(acme, doc)  # its chunks' facts are in the graph
    r = env.client.delete(f"/v1/documents/{doc}", headers=env.auth("acme"))
    assert error(r, 403)["code"] == "forbidden"
    r = env.client.delete(f"/v1/documents/{doc}", headers=env.auth("acme", "admin"))
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["chunks"]) == ("deleted", 0)
    after = search(env, query="coffee beans french press", top_k=100)["results"]
    assert doc not in {h["doc_id"] for h in after}
    assert env.client.get(f"/v1/documents/{doc}", headers=env.auth("acme")).json()["status"] == (
        "deleted"
    )
    assert env.platform.graph_store.document(acme, doc) is None  # and out of the graph
    globex = search(env, tenant="globex", query="employee handbook", top_k=100)["results"]
    assert "tenants/globex/shared/handbook.md" in {h["doc_id"] for h in globex}
