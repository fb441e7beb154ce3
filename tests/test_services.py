"""The suite's Redis is its own: a server this test run started, never the developer's."""

from __future__ import annotations

import os

import pytest
from redis import Redis

from tests.support.processes import children
from tests.support.services import PORT_VARIABLE, redis_url


def test_every_test_reaches_the_redis_this_run_started() -> None:
    if os.environ.get(PORT_VARIABLE):
        pytest.skip(f"{PORT_VARIABLE} names a server started by someone else, on purpose")
    assert os.environ["RAG_REDIS_URL"] == redis_url(15)  # what a `rag` child reaches by default
    with Redis.from_url(redis_url(0)) as client:
        server_pid = client.info("server")["process_id"]
    assert server_pid in children(), "the suite's Redis is not a server this run started"
