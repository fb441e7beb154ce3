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

A test whose processes cannot reach loopback (tests/test_multihost.py, whose hosts are network
namespaces) starts a pair of its own listening on another address of this machine
(`services_on`), stopped when it is done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from workers.redis_server import answers, free_port, start_redis_server

REDIS_HOST = "127.0.0.1"
PORT_VARIABLE = "RAG_TEST_REDIS_PORT"
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT_VARIABLE = "RAG_TEST_POSTGRES_PORT"
# Debian's server binaries are not on PATH; `pg_config --bindir` names their folder.
_PG_CONFIG = "pg_config"


class _PrivateRedis:
    """A redis-server of this run on `host`, started on first use; the suite's own on loopback,
    which RAG_TEST_REDIS_PORT may replace."""

    def __init__(self, host: str = REDIS_HOST) -> None:
        self.host = host
        self._guard = threading.Lock()
        self._port: int | None = None
        self._process: subprocess.Popen | None = None
        self._folder: Path | None = None

    def port(self) -> int:
        with self._guard:
            if self._port is None:
                told = _told_port() if self.host == REDIS_HOST else None
                self._port = told or self._start()
            return self._port

    def url(self, db: int) -> str:
        return f"redis://{self.host}:{self.port()}/{db}"

    def _start(self) -> int:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "the tests start their own redis-server and none is installed: "
                "apt-get install redis-server (make test does), or set RAG_TEST_REDIS_PORT"
            )
        self._folder = Path(tempfile.mkdtemp(prefix="rag-test-redis-"))
        port = free_port()
        if self.host == REDIS_HOST:
            self._process = start_redis_server(binary, self._folder, port, persist=False)
        else:
            self._process = _redis_bound_to(binary, self._folder, self.host, port)
        return port

    def stop(self) -> None:
        with self._guard:
            if self._process is not None:
                self._process.terminate()
                self._process.wait()
            if self._folder is not None:
                shutil.rmtree(self._folder, ignore_errors=True)
            self._process = self._folder = self._port = None


def _redis_bound_to(binary: str, folder: Path, host: str, port: int) -> subprocess.Popen:
    """A redis-server listening on `host` alone (`start_redis_server` serves loopback only)."""
    process = subprocess.Popen(
        [binary, "--bind", host, "--port", str(port), "--dir", str(folder),
         "--appendonly", "no", "--save", "", "--protected-mode", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not answers(f"redis://{host}:{port}/0", timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"redis-server did not start on {host}:{port}")
        time.sleep(0.05)
    return process


class _PrivatePostgres:
    """A PostgreSQL cluster of this run on `host` (the suite's own on loopback, which
    RAG_TEST_POSTGRES_PORT may replace), started on first use.

    `initdb` refuses to run as root, so as root the cluster belongs to the `postgres` system user
    (Debian's package creates it) and its commands run through `runuser`.
    """

    def __init__(self, host: str = POSTGRES_HOST) -> None:
        self.host = host
        self._guard = threading.Lock()
        self._port: int | None = None
        self._folder: Path | None = None
        self._created: set[str] = set()

    def port(self) -> int:
        with self._guard:
            if self._port is None:
                told = _told_port(POSTGRES_PORT_VARIABLE) if self.host == POSTGRES_HOST else None
                self._port = told or self._start()
            return self._port

    def _start(self) -> int:
        self._folder = Path(tempfile.mkdtemp(prefix="rag-test-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self._folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self._folder / "data"), "-U", "postgres", "-A", "trust")
        if self.host != POSTGRES_HOST:  # initdb trusts loopback only; let the private subnet in
            with (self._folder / "data" / "pg_hba.conf").open("a") as hba:
                hba.write("host all postgres samenet trust\n")
        port = free_port()
        options = (
            f"-p {port} -k {self._folder} -c listen_addresses={self.host} -c fsync=off "
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
        """A database of that name on this cluster, created empty on first use."""
        port = self.port()
        with self._guard:
            if name not in self._created:
                with psycopg.connect(_dsn(self.host, port), autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    conn.execute(f'CREATE DATABASE "{name}"')
                self._created.add(name)
        return f"postgresql+psycopg://postgres@{self.host}:{port}/{name}"

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


def _dsn(host: str, port: int) -> str:
    return f"host={host} port={port} user=postgres dbname=postgres"


def _told_port(variable: str = PORT_VARIABLE) -> int | None:
    told = os.environ.get(variable, "")
    return int(told) if told else None


_REDIS = _PrivateRedis()
_POSTGRES = _PrivatePostgres()


def redis_url(db: int) -> str:
    """A database of the suite's own Redis (started here on the first call)."""
    return _REDIS.url(db)


def postgres_url(database: str) -> str:
    """An empty database of the suite's own PostgreSQL (the cluster started on the first call),
    as a SQLAlchemy URL; each name is created afresh once per run."""
    return _POSTGRES.database(database)


def stop_services() -> None:
    """Stop the servers this run started (pytest_sessionfinish)."""
    _REDIS.stop()
    _POSTGRES.stop()


class BoundServices:
    """A Redis and a PostgreSQL of their own, listening on one address other than loopback."""

    def __init__(self, host: str) -> None:
        self._redis = _PrivateRedis(host)
        self._postgres = _PrivatePostgres(host)

    def redis_url(self, db: int) -> str:
        return self._redis.url(db)

    def postgres_url(self, database: str) -> str:
        return self._postgres.database(database)

    def stop(self) -> None:
        self._redis.stop()
        self._postgres.stop()


@contextmanager
def services_on(host: str) -> Iterator[BoundServices]:
    """A Redis and a PostgreSQL listening on `host` (say, the gateway of network namespaces,
    which cannot reach this machine's loopback), started on first use and stopped on exit."""
    services = BoundServices(host)
    try:
        yield services
    finally:
        services.stop()
