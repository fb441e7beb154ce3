"""Issue 23, finding 2, through the real app: one tenant's flood of reranked searches no longer
queues another tenant's searches behind it.

acme sends a burst of reranked searches (the real model, the real engine, a real cross-encoder,
which reranks one call at a time), more than the server runs at once. While they queue, globex
sends a plain search and then a reranked one. The order of the answers is read from the audit
log, which writes each search's line when it ends: served first come, first served (as the
thread pool did), each of globex's searches came after nearly all of acme's burst; now the plain
one does not wait for reranking at all, and the reranked one is served as soon as the reranking
in progress ends. What is checked is the order, never a timing: the bound leaves globex the time
of many of acme's rerankings to get in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.embedding import Embedder
from tests.support.api_env import ApiEnv, prepare_runtime, running_app
from tests.support.audit import read_audit_log
from tests.support.models import build_untrained_cross_encoder

BURST = 24  # acme's reranked searches, all sent at once


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[ApiEnv]:
    cross_encoder = build_untrained_cross_encoder(
        embedder.model_name, tmp_path_factory.mktemp("ce")
    )
    runtime, keys = prepare_runtime(
        tmp_path_factory.mktemp("api"), embedder, reranker_model=str(cross_encoder)
    )
    with running_app(runtime, keys) as env:
        yield env


def _searches(env: ApiEnv) -> list[dict]:
    entries = read_audit_log(env.runtime.settings.audit_log_path)
    return [e for e in entries if e["event"] == "search"]


def _wait_for_searches(env: ApiEnv, tenant: str, count: int) -> None:
    deadline = time.monotonic() + 300
    while sum(e["tenant_id"] == tenant for e in _searches(env)) < count:
        assert time.monotonic() < deadline, f"{tenant} did not get {count} searches answered"
        time.sleep(0.01)


def test_a_tenant_is_served_while_another_tenants_flood_queues(env: ApiEnv) -> None:
    reranked = {"query": "fox den predators", "top_k": 5, "rerank": True, "rerank_top_n": 50}
    plain = {"query": "fox den predators", "top_k": 5}

    def post(tenant: str, body: dict) -> int:
        r = env.client.post("/v1/search", json=body, headers=env.auth(tenant))
        return r.status_code

    with ThreadPoolExecutor(BURST) as pool:
        flood = [pool.submit(post, "acme", reranked) for _ in range(BURST)]
        _wait_for_searches(env, "acme", 1)  # the burst is in the server and being served
        assert post("globex", plain) == 200
        assert post("globex", reranked) == 200
        assert [f.result() for f in flood] == [200] * BURST

    order = [e["tenant_id"] for e in _searches(env)]
    plain_at, reranked_at = (i for i, tenant in enumerate(order) if tenant == "globex")
    # First come, first served, each came after all but the 8 acme searches the thread pool ran.
    assert order[plain_at:].count("acme") >= BURST // 2, order
    assert order[reranked_at:].count("acme") >= BURST // 2, order
