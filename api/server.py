"""Run the API under uvicorn: what `rag serve` and `rag up` call.

The listening socket is bound before anything slow happens (loading the model, opening the
index), so a busy port is an error at once rather than after the start-up.
"""

from __future__ import annotations

import errno
import logging
import socket

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from core.index.lock import ShardLock
from core.settings import ApiSettings, Settings
from eval.links import link_secret
from serving.platform import Platform

# uvicorn's own log: `rag serve` configures no other, and `rag up` shows it too.
server_log = logging.getLogger("uvicorn.error")


class AddressInUseError(RuntimeError):
    """The API's port is taken, usually by another `rag serve` or `rag up`."""


def bind_api_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Named, not 0: asyncio sets TCP_NODELAY on accepted connections only for IPPROTO_TCP sockets.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise AddressInUseError(
                f"port {port} on {host} is in use (another `rag serve` or `rag up`?); stop it, "
                "or pick another port with --port or RAG_API_PORT"
            ) from None
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def api_server(app: FastAPI, api: ApiSettings, log_level: str = "info") -> uvicorn.Server:
    """The uvicorn server every API runs under (`rag serve`, `rag up`).

    Forwarded headers name the client only when they come from a proxy in
    RAG_API_FORWARDED_ALLOW_IPS: uvicorn by default believes them from 127.0.0.1, so behind no
    proxy at all any local client could choose the address the audit log and the per-client
    limits see.
    """
    proxies = [entry for entry in api.forwarded_allow_ips.split(",") if entry]
    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies,
    )
    return uvicorn.Server(config)


def run_api(app: FastAPI, sock: socket.socket, api: ApiSettings, log_level: str = "info") -> None:
    """Serve `app` on the bound `sock` until SIGINT or SIGTERM; an app that fails to start (its
    lifespan raised, and uvicorn logged why) is a RuntimeError here.

    The address served is said first: uvicorn names none for a socket it is handed.
    """
    server = api_server(app, api, log_level)
    url = api_url(sock)
    server_log.info("serving the API at %s (docs: %s/docs)", url, url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise RuntimeError("the API did not start; the log above says why")


def api_url(sock: socket.socket) -> str:
    """The address a client reaches the API on through `sock`, as bound."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """One process, one event loop: the embedded shard allows a single owner, so no workers."""
    check_can_start(settings)
    sock = bind_api_socket(host or settings.api.host, port or settings.api.port)
    run_api(create_app(Platform.open(settings)), sock, settings.api)


def check_can_start(settings: Settings) -> None:
    """What would otherwise fail only after the model has loaded: the shard held elsewhere, a
    report-link secret too short to sign with (`eval.links.LinkSecretError`)."""
    if settings.index.mode == "edge":
        ShardLock.check_free(settings.shard_path)
    link_secret(settings)
