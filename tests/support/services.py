"""Where the tests' real services answer: servers this test run started itself.

The suite never connects to a server it did not start. The first test that needs Redis starts a
private `redis-server` (a free loopback port, a temporary folder, no persistence), the first that
needs PostgreSQL a private cluster (`initdb` into a temporary folder, a free loopback port and a
socket in that folder, fsync off), and `stop_services` stops both at the end of the session, so a
developer's own Redis on 6379 or PostgreSQL on 5432, and any platform running on them, is never
flushed, written or sent a test's tasks.

`RAG_TEST_REDIS_PORT` and `RAG_TEST_POSTGRES_PORT` (test-only variables) point the suite at
servers started by someone else instead, on 127.0.0.1 (PostgreSQL with trust authentication for
the user `postgres`): two suites can then share one server on purpose, by the one that started it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import psycopg

from workers.redis_server import free_port, start_redis_server

REDIS_HOST = "127.0.0.1"
PORT_VARIABLE = "RAG_TEST_REDIS_PORT"
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT_VARIABLE = "RAG_TEST_POSTGRES_PORT"
# Debian's server binaries are not on PATH; `pg_config --bindir` names their folder.
_PG_CONFIG = "pg_config"


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


class _PrivatePostgres:
    """The suite's own PostgreSQL cluster, started on first use.

    `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` system user
    (Debian's package creates it) and its commands run through `runuser`.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._port: int | None = None
        self._folder: Path | None = None
        self._created: set[str] = set()

    def port(self) -> int:
        with self._guard:
            if self._port is None:
                self._port = _told_port(POSTGRES_PORT_VARIABLE) or self._start()
            return self._port

    def _start(self) -> int:
        self._folder = Path(tempfile.mkdtemp(prefix="rag-test-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self._folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self._folder / "data"), "-U", "postgres", "-A", "trust")
        port = free_port()
        options = (
            f"-p {port} -k {self._folder} -c listen_addresses={POSTGRES_HOST} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self._folder / "data"), "-o", options, "-w", "-l",
                  str(self._folder / "server.log"), "start")  # fmt: skip
        return port

    def _run(self, binary: str, *args: str, check: bool = True) -> None:
        as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        command = [*as_owner, str(_postgres_binaries() / binary), *args]
        subprocess.run(command, check=check, capture_output=True)

    def database(self, name: str) -> str:
        """A database of that name on the suite's cluster, created empty on first use."""
        port = self.port()
        with self._guard:
            if name not in self._created:
                with psycopg.connect(_dsn(port, "postgres"), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    conn.execute(f'CREATE DATABASE "{name}"')
                self._created.add(name)
        return f"postgresql+psycopg://postgres@{POSTGRES_HOST}:{port}/{name}"

    def stop(self) -> None:
        with self._guard:
            if self._folder is not None:
                data = str(self._folder / "data")
                self._run("pg_ctl", "-D", data, "-m", "immediate", "stop", check=False)
                shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = self._port = None
            self._created.clear()


def _postgres_binaries() -> Path:
    if shutil.which(_PG_CONFIG) is None:
        raise RuntimeError(
            "the tests start their own PostgreSQL and none is installed: apt-get install "
            f"postgresql (make test does), or set {POSTGRES_PORT_VARIABLE}"
        )
    folder = subprocess.run([_PG_CONFIG, "--bindir"], check=True, capture_output=True, text=True)
    return Path(folder.stdout.strip())


def _dsn(port: int, database: str) -> str:
    return f"host={POSTGRES_HOST} port={port} user=postgres dbname={database}"


def _told_port(variable: str = PORT_VARIABLE) -> int | None:
    told = os.environ.get(variable, "")
    return int(told) if told else None


_REDIS = _PrivateRedis()
_POSTGRES = _PrivatePostgres()


def redis_url(db: int) -> str:
    """A database of the suite's own Redis (started here on the first call)."""
    return f"redis://{REDIS_HOST}:{_REDIS.port()}/{db}"


def postgres_url(database: str) -> str:
    """An empty database of the suite's own PostgreSQL (the cluster started on the first call),
    as a SQLAlchemy URL; each name is created afresh once per run."""
    return _POSTGRES.database(database)


def stop_services() -> None:
    """Stop the servers this run started (pytest_sessionfinish)."""
    _REDIS.stop()
    _POSTGRES.stop()
