"""The suite's Redis and PostgreSQL are its own: servers this test run started, never the
developer's."""

from __future__ import annotations

import os
import tempfile

import psycopg
import pytest
from redis import Redis

from tests.support.processes import children
from tests.support.services import (
    PORT_VARIABLE,
    POSTGRES_PORT_VARIABLE,
    postgres_url,
    redis_url,
)


def test_every_test_reaches_the_redis_this_run_started() -> None:
    if os.environ.get(PORT_VARIABLE):
        pytest.skip(f"{PORT_VARIABLE} names a server started by someone else, on purpose")
    assert os.environ["RAG_REDIS_URL"] == redis_url(15)  # what a `rag` child reaches by default
    with Redis.from_url(redis_url(0)) as client:
        server_pid = client.info("server")["process_id"]
    assert server_pid in children(), "the suite's Redis is not a server this run started"


def test_the_suites_postgres_is_a_cluster_this_run_started() -> None:
    """Never the developer's PostgreSQL on 5432: a cluster in a temporary folder, on its own
    port, whose postmaster is a child of this run (through pg_ctl, so not a direct child: its
    data folder is the proof)."""
    if os.environ.get(POSTGRES_PORT_VARIABLE):
        pytest.skip(f"{POSTGRES_PORT_VARIABLE} names a server started by someone else, on purpose")
    url = postgres_url("rag_services_check")
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        data_directory = conn.execute("SHOW data_directory").fetchone()[0]
        port = conn.execute("SHOW port").fetchone()[0]
        conn.execute("CREATE TABLE written (n int)")
    assert int(port) != 5432
    assert data_directory.startswith(tempfile.gettempdir())
    assert "rag-test-postgres-" in data_directory
    assert postgres_url("rag_services_check") == url  # the same database for the rest of the run
