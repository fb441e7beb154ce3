"""Tenant isolation under 10,000 randomized searches across 5 tenants (issue 7).

Every tenant holds the same documents at the same paths with the same sidecar metadata, plus one
of its own, so any query or filter that finds a tenant's chunk would find the others' if isolation
failed. Requests go through the real HTTP app with each tenant's reader or admin key, in random
modes, with random filters (including ones naming other tenants' documents), random top_k and
rerank depth; the outside leg is the careless one that ranks every tenant's chunks. The model is
real; repeated query strings reuse their vector so the run stays within a few minutes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest

from api.auth import create_key
from core.embedding import Embedder
from core.manifest import DocStatus
from core.runtime import Runtime
from core.types import TenantScope
from ingest.bucket import LocalBucket
from ingest.documents import DocumentError, tenant_of
from ingest.service import Ingestion
from tests.support.api_env import CORPUS, SIDECARS, EveryChunkLeg, running_app
from tests.support.settings import make_settings

TENANTS = [f"t{i}" for i in range(5)]
SHARED = {k.split("/", 2)[2]: v for k, v in CORPUS.items() if k.startswith("tenants/acme/")}
SHARED_META = {k.split("/", 2)[2]: v for k, v in SIDECARS.items() if k.startswith("tenants/acme/")}
REQUESTS = {"edge": 10_000, "server": 2_000}
WORDS = [
    "fox",
    "vacation",
    "badge",
    "revenue",
    "coffee",
    "whale",
    "river",
    "solar",
    "expense",
    "policy",
    "dawn",
    "leave",
    "security",
    "inverter",
    "brew",
    "harpoon",
    "bridge",
    "polar",
    "days",
    "employee",
    "own",
    "private",
    "secret",
]


class RememberingEmbedder(Embedder):
    """The real model; a query string seen before reuses its vector (documents are not cached)."""

    def __init__(self, inner: Embedder) -> None:
        self.__dict__.update(inner.__dict__)
        self.embed_query = lru_cache(maxsize=4096)(inner.embed_query)  # type: ignore[method-assign]


def _write(bucket: Path) -> None:
    for tenant in TENANTS:
        for rel, data in SHARED.items():
            path = bucket / "tenants" / tenant / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if rel in SHARED_META:
                Path(f"{path}.meta.json").write_text(json.dumps(SHARED_META[rel]))
        own = bucket / "tenants" / tenant / "own.txt"
        own.write_text(f"A private secret note that only tenant {tenant} owns, about {tenant}.")


def _doc_ids(tenant: str) -> list[str]:
    return [f"tenants/{tenant}/{rel}" for rel in [*SHARED, "own.txt"]]


def _random_filters(rnd: random.Random) -> list[dict]:
    other = rnd.choice(TENANTS)
    choices = [
        {"field": "doc_id", "any": rnd.sample([d for t in TENANTS for d in _doc_ids(t)], 5)},
        {"field": "doc_id", "eq": rnd.choice(_doc_ids(other))},
        {"field": "doc_type", "any": rnd.sample(["md", "txt", "pdf", "docx", "html"], 2)},
        {"field": "meta.project", "eq": rnd.choice(["apollo", "gemini"])},
        {"field": "meta.year", "gte": rnd.randint(2015, 2022), "lte": rnd.randint(2021, 2030)},
        {"field": "size", "gte": rnd.randint(0, 2_000)},
        {"field": "modified_at", "gte": "2000-01-01T00:00:00Z"},
        {"field": "source", "eq": f"file:///nowhere/tenants/{other}/own.txt"},
    ]
    return rnd.sample(choices, rnd.choice([0, 0, 1, 1, 2]))


@pytest.fixture(scope="module", params=sorted(REQUESTS))
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[tuple[str, object, dict[str, set[str]], dict[tuple[str, str], str]]]:
    tmp = tmp_path_factory.mktemp(f"iso-{request.param}")
    settings = make_settings(
        tmp, request.param, chunk_size=40, chunk_overlap=0, graph_in_hybrid=True
    )
    bucket = tmp / "bucket"
    _write(bucket)
    runtime = Runtime(settings, RememberingEmbedder(embedder))
    summary = Ingestion(runtime, LocalBucket(bucket)).run()
    assert summary.failed == 0 and summary.added == len(TENANTS) * (len(SHARED) + 1)
    keys = {(t, r): create_key(settings, t, r) for t in TENANTS for r in ("reader", "admin")}
    with running_app(runtime, {}, extra_legs=[EveryChunkLeg(runtime)]) as env:
        own = {t: {pid for pid, _ in runtime.index.scroll(TenantScope(t), ())} for t in TENANTS}
        assert all(own.values()) and not set.intersection(*own.values())
        yield request.param, env.client, own, keys


def test_randomized_searches_never_cross_tenants(deployment: tuple) -> None:
    backend, client, own, keys = deployment
    rnd = random.Random(20261123)
    leaked, answered, hits = 0, 0, 0
    found_by = {t: 0 for t in TENANTS}
    for _ in range(REQUESTS[backend]):
        tenant, role = rnd.choice(TENANTS), rnd.choice(["reader", "reader", "admin"])
        body = {
            "query": " ".join(rnd.sample(WORDS, rnd.randint(1, 4))),
            "mode": rnd.choice(["hybrid", "dense", "bm25", "graph"]),
            "top_k": rnd.choice([1, 5, 10, 50, 100]),
            "filters": _random_filters(rnd),
            "explain": rnd.random() < 0.2,
        }
        r = client.post("/v1/search", json=body, headers={"X-API-Key": keys[tenant, role]})
        assert r.status_code == 200, (body, r.text)
        answered += 1
        ids = [h["id"] for h in r.json()["results"]]
        leaked += len(set(ids) - own[tenant])
        leaked += sum(not h["doc_id"].startswith(f"tenants/{tenant}/") for h in r.json()["results"])
        hits += len(ids)
        found_by[tenant] += bool(ids)
    print(f"{backend}: {answered} searches, {hits} hits, {leaked} from another tenant")
    assert leaked == 0
    # Not vacuous: every tenant's searches did find chunks, most of them many.
    assert all(n > REQUESTS[backend] / len(TENANTS) / 2 for n in found_by.values()), found_by
    assert hits > REQUESTS[backend] * 2


@pytest.mark.parametrize(
    ("key", "tenant"),
    [
        ("tenants/t0/../t1/doc.txt", "t0"),  # a writer confined to tenants/t0/ stays there
        ("tenants/t0/tenants/t1/doc.txt", "t0"),
        ("../tenants/t1/doc.txt", "default"),
        ("tenants/../t1/doc.txt", None),  # refused: quarantined with the reason
        ("tenants/t1\x00/doc.txt", None),
        ("tenants/\uff541/doc.txt", None),  # a full-width look-alike of t1
        ("tenants/t1\n/doc.txt", None),  # `$` matched before a final newline (issue 23)
        ("tenants//doc.txt", None),  # an empty folder is no tenant, not the default one
        ("tenants/t.1/doc.txt", None),
        ("tenants/doc.txt", "default"),  # a file beside the tenant folders
    ],
)
def test_a_path_cannot_move_a_document_into_another_tenant(key: str, tenant: str | None) -> None:
    if tenant is None:
        with pytest.raises(DocumentError, match="is not a valid tenant id"):
            tenant_of(key, "default")
    else:
        assert tenant_of(key, "default") == TenantScope(tenant)


def test_a_sidecar_cannot_move_a_document_into_another_tenant(
    tmp_path: Path, embedder: Embedder
) -> None:
    settings = make_settings(tmp_path, chunk_size=40, chunk_overlap=0, graph_enabled=False)
    folder = tmp_path / "bucket" / "tenants" / "t0"
    folder.mkdir(parents=True)
    (folder / "doc.txt").write_text("An ordinary note of tenant t0.")
    for field in ("tenant_id", "tenant", "doc_id"):
        (folder / f"{field}.txt").write_text(f"A note whose sidecar sets {field}.")
        (folder / f"{field}.txt.meta.json").write_text(json.dumps({field: "t1"}))
    with Runtime(settings, embedder) as runtime:
        summary = Ingestion(runtime, LocalBucket(tmp_path / "bucket")).run()
        assert (summary.added, summary.failed) == (1, 3)
        for field in ("tenant_id", "tenant", "doc_id"):
            record = runtime.manifest.get(f"tenants/t0/{field}.txt")
            assert record.status == DocStatus.FAILED and "from its path" in record.error
        assert runtime.index.count(TenantScope("t1")) == 0
        assert {p["tenant_id"] for _, p in runtime.index.scroll(None, ("tenant_id",))} == {"t0"}
