"""Where the tests' real services answer: servers this test run started itself.

The suite never connects to a server it did not start. The first test that needs Redis starts a
private `redis-server` (a free loopback port, a temporary folder, no persistence), and
`stop_services` stops it at the end of the session, so a developer's own Redis on 6379, and any
platform running on it, is never flushed or sent a test's tasks.

`RAG_TEST_REDIS_PORT` (a test-only variable) points the suite at a server started by someone else
instead, on 127.0.0.1: two suites can then share one server on purpose, by the one that started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

from workers.redis_server import free_port, start_redis_server

REDIS_HOST = "127.0.0.1"
PORT_VARIABLE = "RAG_TEST_REDIS_PORT"


class _PrivateRedis:
    """The suite's own redis-server, started on first use."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._port: int | None = None
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None

    def port(self) -> int:
        with self._guard:
            if self._port is None:
                self._port = _told_port() or self._start()
            return self._port

    def _start(self) -> int:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "the tests start their own redis-server and none is installed: "
                "apt-get install redis-server (make test does), or set RAG_TEST_REDIS_PORT"
            )
        self._folder = Path(tempfile.mkdtemp(prefix="rag-test-redis-"))
        port = free_port()
        self._process = start_redis_server(binary, self._folder, port, persist=False)
        return port

    def stop(self) -> None:
        with self._guard:
            if self._process is not None:
                self._process.terminate()
                self._process.wait()
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
            self._process = self._folder = self._port = None


def _told_port() -> int | None:
    told = os.environ.get(PORT_VARIABLE, "")
    return int(told) if told else None


_REDIS = _PrivateRedis()


def redis_url(db: int) -> str:
    """A database of the suite's own Redis (started here on the first call)."""
    return f"redis://{REDIS_HOST}:{_REDIS.port()}/{db}"


def stop_services() -> None:
    """Stop the servers this run started (pytest_sessionfinish)."""
    _REDIS.stop()
