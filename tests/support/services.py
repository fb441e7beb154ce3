"""Where the tests' real services answer.

`RAG_TEST_REDIS_PORT` moves every Redis-backed test to another server, so two suites can run side
by side on one machine without flushing each other's databases.
"""

from __future__ import annotations

import os

REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("RAG_TEST_REDIS_PORT", "6379"))


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"
