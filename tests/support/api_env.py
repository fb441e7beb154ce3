"""Building blocks for the API tests: a real two-tenant corpus, ingested, keys, a running app.

Two tenants hold overlapping documents: the same handbook at the same relative path, and a fox
story each (different text, same sidecar metadata), so every query and filter that finds one
tenant's chunks would find the other's if isolation failed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import create_key
from core.embedding import Embedder
from core.runtime import Runtime
from core.types import TenantScope
from ingest.bucket import LocalBucket
from retrieval.search import Leg
from serving.platform import Platform
from tests.support.documents import make_docx, make_html, make_markdown, make_pdf, make_text
from tests.support.services import redis_url
from tests.support.settings import make_settings

TENANTS = ("acme", "globex")
ADMIN_KEY = "operator-bootstrap-key-for-tests-only"

HANDBOOK = [
    "Vacation policy: every employee receives twenty five days of paid leave per year, and "
    "unused days carry over until the end of March.",
    "Expense reports are filed within thirty days with receipts attached; travel is booked "
    "through the internal portal and economy class is the default.",
    "Security badges must be worn visibly at all times. A lost badge is reported to the front "
    "desk immediately so it can be disabled.",
]
CORPUS: dict[str, bytes] = {
    "tenants/acme/shared/handbook.md": make_markdown("Employee handbook", HANDBOOK),
    "tenants/acme/fox.txt": make_text(
        [
            "The quick brown fox jumps over the lazy dog near the river bank.",
            "Red foxes hunt small rodents at dawn and hide their food under leaves.",
        ]
    ),
    "tenants/acme/report.pdf": make_pdf(
        [
            "Quarterly revenue grew by twelve percent, driven by solar panel installations.",
            "Operating costs fell as the new inverter factory reached full production.",
        ],
        title="Quarterly report",
        author="Grace Hopper",
    ),
    "tenants/acme/notes.html": make_html(
        "Coffee notes",
        [
            "Brew coffee with water just off the boil; grind the beans coarsely for a French "
            "press and steep for four minutes.",
        ],
    ),
    "tenants/globex/shared/handbook.md": make_markdown("Employee handbook", HANDBOOK),
    "tenants/globex/fox.txt": make_text(
        [
            "Arctic foxes turn white in winter and follow polar bears to scavenge.",
            "A fox den has several entrances so the cubs can escape from predators.",
        ]
    ),
    "tenants/globex/whale.docx": make_docx(
        [
            "Call me Ishmael. The whale surfaced beside the ship at dawn.",
            "The harpooners waited on deck while the captain studied the horizon.",
        ],
        title="Whale story",
        author="Herman",
    ),
    "tenants/globex/river.txt": make_text(
        ["A river runs through the middle of the old town, under seven stone bridges."]
    ),
    "public/readme.txt": make_text(["The default tenant owns documents outside tenants/."]),
}
SIDECARS: dict[str, dict[str, object]] = {
    "tenants/acme/fox.txt": {"project": "apollo", "year": 2021, "confidential": True},
    "tenants/globex/fox.txt": {"project": "apollo", "year": 2021, "confidential": True},
    "tenants/acme/report.pdf": {"project": "gemini", "year": 2023},
    "tenants/globex/whale.docx": {"project": "apollo", "year": 2019},
}


def write_corpus(bucket: Path) -> None:
    for key, data in CORPUS.items():
        path = bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for key, meta in SIDECARS.items():
        (bucket / f"{key}.meta.json").write_text(json.dumps(meta))


def doc_ids(tenant: str) -> list[str]:
    return [k for k in CORPUS if k.startswith(f"tenants/{tenant}/")]


def prepare_runtime(
    tmp: Path, embedder: Embedder, backend: str = "edge", ingest: bool = True, **overrides: object
) -> tuple[Runtime, dict[str, str]]:
    """A runtime over the corpus (ingested through the platform's pipeline, graph included) and a
    key per tenant/role.

    Keys are named `"<tenant>:<role>"`.
    """
    overrides = {"redis_url": redis_url(10), **overrides}  # the API's document locks
    settings = make_settings(
        tmp, backend, chunk_size=48, chunk_overlap=8, admin_api_key=ADMIN_KEY, **overrides
    )
    bucket = tmp / "bucket"
    bucket.mkdir(parents=True, exist_ok=True)
    runtime = Runtime(settings, embedder)
    if ingest:
        write_corpus(bucket)
        with Platform(runtime) as platform:  # the runtime reopens when the app asks for it
            summary = platform.ingestion_of(LocalBucket(bucket)).run()
        assert summary.failed == 0 and summary.added == len(CORPUS)
    keys = {f"{t}:{r}": create_key(settings, t, r) for t in TENANTS for r in ("reader", "admin")}
    return runtime, keys


@dataclass
class ApiEnv:
    client: TestClient
    platform: Platform
    keys: dict[str, str]

    @property
    def runtime(self) -> Runtime:
        return self.platform.runtime

    def auth(self, tenant: str, role: str = "reader") -> dict[str, str]:
        return {"X-API-Key": self.keys[f"{tenant}:{role}"]}

    def chunk_ids(self, tenant: str) -> set[str]:
        """The tenant's chunk ids as the index holds them."""
        return {pid for pid, _ in self.runtime.index.scroll(TenantScope(tenant), ())}


@contextmanager
def running_app(
    runtime: Runtime,
    keys: dict[str, str],
    extra_legs: Sequence[Leg] = (),
    transport: httpx.BaseTransport | None = None,
) -> Iterator[ApiEnv]:
    """The real app through its lifespan (model, index and reranker loaded, closed at exit), with
    `extra_legs` as its only outside legs and `transport` as the LLM's and Cohere's network."""
    platform = Platform(runtime, legs=extra_legs, http_transport=transport)
    with TestClient(create_app(platform)) as client:
        yield ApiEnv(client, platform, keys)


class EveryChunkLeg:
    """A test double for the `retrieval.search.Leg` protocol (not a mock of anything that could
    run here): a deliberately careless outside leg that ranks every chunk of every tenant, to
    prove the search service confines outside ids to the caller's tenant and filters."""

    name = "graph"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def rank(self, scope: TenantScope, query: str, limit: int) -> list[str]:
        return sorted(pid for pid, _ in self._runtime.index.scroll(None, ()))[:limit]
