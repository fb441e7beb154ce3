"""The real API under the uvicorn server `rag serve` and `rag up` run (`api.server.api_server`),
in a thread on a loopback socket: for tests and benches that need real HTTP, a real client
address and the server's own handling of headers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI

from api.server import api_server, bind_api_socket
from core.settings import ApiSettings
from workers.redis_server import free_port


@contextmanager
def serving(app: FastAPI, api: ApiSettings, start_timeout: float = 120) -> Iterator[str]:
    """Serve `app` until the block ends (its lifespan closes whatever it owns); yields its URL."""
    port = free_port()
    server = api_server(app, api, log_level="warning")
    sock = bind_api_socket("127.0.0.1", port)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()
