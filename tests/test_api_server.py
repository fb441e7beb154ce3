"""What a client controls of the server's own records, over real HTTP to the uvicorn server that
`rag serve` and `rag up` run (`api.server.api_server`): the metric series it can create, and the
address the audit log and the per-client refusal limit see.

Before, an invented HTTP method became a label value (300 requests with 60 KB methods grew
`/metrics` from 5.8 to 41.9 MB), and any client forged its audited address with X-Forwarded-For,
since uvicorn trusts it from 127.0.0.1, where `rag up` listens.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from api.app import create_app
from api.server import bind_api_socket
from core.embedding import Embedder
from core.settings import Settings
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, prepare_runtime
from tests.support.audit import read_audit_log
from tests.support.server import serving

REFUSALS_PER_MINUTE = 3


@contextmanager
def _api(
    tmp_path: Path, embedder: Embedder, **settings: object
) -> Iterator[tuple[httpx.Client, Settings]]:
    """A client of the real app, served over loopback, and the app's settings."""
    runtime, _ = prepare_runtime(tmp_path, embedder, ingest=False, **settings)
    app = create_app(Platform(runtime))
    with serving(app, runtime.settings.api) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c, runtime.settings


def _request_series(client: httpx.Client) -> set[tuple[str, str, str]]:
    """(route, method, status) of every series of the request counter."""
    reply = client.get("/metrics", headers={"X-API-Key": ADMIN_KEY})
    assert reply.status_code == 200, reply.text
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"])
        for family in text_string_to_metric_families(reply.text)
        if family.name == "rag_http_requests"
        for s in family.samples
        if s.name == "rag_http_requests_total"
    }


def _invent(client: httpx.Client, n: int, size: int) -> None:
    """`n` requests with methods nobody defined, `size` characters each, to a route, a health
    check and a path no route matches."""
    for i in range(n):
        method = f"M{i:04d}".ljust(size, "X")
        for path in ("/v1/search", "/healthz", f"/nowhere/{i}"):
            reply = client.request(method, path)
            assert reply.status_code in (404, 405), (method[:10], path, reply.status_code)


def test_invented_methods_are_counted_as_other(tmp_path: Path, embedder: Embedder) -> None:
    with _api(tmp_path, embedder) as (client, _):
        _request_series(client)  # its own series, counted once its reply is sent
        _invent(client, 3, size=2_000)
        first = _request_series(client)
        _invent(client, 60, size=2_000)
        assert _request_series(client) == first  # the series stay as they were: bounded
    invented = {(route, status) for route, method, status in first if method == "other"}
    assert invented == {("/v1/search", "405"), ("/healthz", "405"), ("unmatched", "404")}
    assert {method for _, method, _ in first} == {"GET", "other"}


def _forge(client: httpx.Client, n: int) -> None:
    """`n` requests with a wrong key, each claiming another client address."""
    for i in range(n):
        reply = client.post(
            "/v1/search",
            json={"query": "anything"},
            headers={"X-API-Key": "rag_nope_wrong", "X-Forwarded-For": f"203.0.113.{i + 1}"},
        )
        assert reply.status_code == 401


@pytest.mark.parametrize(
    ("proxies", "believed"),
    [("", False), ("10.0.0.9", False), ("127.0.0.1", True)],
    ids=["no-proxy-by-default", "another-proxy", "named-proxy"],
)
def test_forwarded_for_is_believed_only_from_a_named_proxy(
    tmp_path: Path, embedder: Embedder, proxies: str, believed: bool
) -> None:
    settings = {
        "api_forwarded_allow_ips": proxies,
        "audit_refusals_per_client_per_minute": REFUSALS_PER_MINUTE,
    }
    forged = 2 * REFUSALS_PER_MINUTE + 2
    with _api(tmp_path, embedder, **settings) as (client, served):
        _forge(client, forged)
    assert served.api.forwarded_allow_ips == proxies and served.audit_log_path is not None
    entries = read_audit_log(served.audit_log_path)
    audited = [e["client"] for e in entries if e["event"] == "auth_refused"]
    if believed:  # the proxy's word: each client its own address, and its own limit
        assert audited == [f"203.0.113.{i + 1}" for i in range(forged)]
    else:  # the socket's peer, held to one client's limit (two, should a minute begin)
        assert set(audited) == {"127.0.0.1"}
        assert len(audited) <= 2 * REFUSALS_PER_MINUTE < forged


def test_a_proxy_named_by_host_name_is_refused() -> None:
    """uvicorn would compare the name with the peer's address as text and never match it."""
    with pytest.raises(ValidationError, match=r"'proxy\.internal' is not an IP address"):
        Settings(api={"forwarded_allow_ips": "10.0.0.2, proxy.internal"})
    listed = Settings(api={"forwarded_allow_ips": " 10.0.0.2, 10.1.0.0/16 ,"})
    assert listed.api.forwarded_allow_ips == "10.0.0.2,10.1.0.0/16"


def test_connections_to_the_api_socket_send_small_responses_at_once() -> None:
    """asyncio sets TCP_NODELAY on an accepted connection only when the listening socket names
    its protocol (IPPROTO_TCP). `bind_api_socket` named none, so Nagle's algorithm held each small
    response until the client's delayed ACK: every answer of `rag serve` and `rag up` waited
    about 40 ms (`/healthz` 44 ms over loopback against 1.8 ms in-process)."""

    async def nodelay_of_an_accepted_connection() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def connected(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        sock = bind_api_socket("127.0.0.1", 0)
        server = await asyncio.start_server(connected, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname())
        try:
            return await asyncio.wait_for(accepted, timeout=60)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(nodelay_of_an_accepted_connection()) != 0
