"""Shared fixtures: one real embedding model per test session, fresh data dirs per test."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One ONNX export per model for the whole suite (and for the `rag up` processes tests start):
# exports are keyed by the weights' digest, so a kept directory is reused by later runs too.
os.environ.setdefault("RAG_ONNX_EXPORT_DIR", str(Path(tempfile.gettempdir()) / "rag-test-onnx"))

from core.embedding import Embedder
from core.onnx_models import InferenceOptions
from core.runtime import Runtime
from core.settings import Settings
from ingest.isolation import close_shared_pools
from tests.support import processes
from tests.support.services import postgres_url, redis_url, stop_services
from tests.support.settings import make_settings
from tests.support.workers import own_redis, redis_db

BACKENDS = ["edge", "server"]
STATE_BACKENDS = ["sqlite", "postgresql"]
__all__ = ["own_redis", "redis_db"]  # fixtures of tests.support, shared with every test file
_LEFT_BEHIND: dict[int, str] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    processes.become_subreaper()
    # What a test or a `rag` process it starts reaches without naming a Redis: the suite's own
    # server, never the developer's (the settings' default, 6379, or their own RAG_REDIS_URL).
    os.environ["RAG_REDIS_URL"] = redis_url(15)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """No test may leave a process running: whatever is left is killed and named. The parser
    pools and the Redis this process shared across tests are its own to stop first."""
    close_shared_pools()
    stop_services()
    _LEFT_BEHIND.update(processes.kill_leftovers())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for pid, cmd in _LEFT_BEHIND.items():
        terminalreporter.write_line(f"killed a process the tests left behind: {pid} {cmd}")


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The shipped all-MiniLM-L6-v2 on the default backend, loaded once; tests compare
    `texts_embedded` deltas."""
    settings = Settings()
    inference = InferenceOptions.from_settings(settings)
    return Embedder(
        settings.models.embedding_model, settings.models.embedding_batch_size, inference=inference
    )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=STATE_BACKENDS)
def state_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose state lives on each backend in turn: SQLite files in the data dir, and a
    fresh database of the suite's own PostgreSQL."""
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        return Settings(data_dir=data_dir)
    database = postgres_url(f"state_{uuid.uuid4().hex[:12]}")
    return Settings(data_dir=data_dir, state={"url": database})


@pytest.fixture
def bucket_dir(tmp_path: Path) -> Path:
    path = tmp_path / "bucket"
    path.mkdir()
    return path


@pytest.fixture
def runtime(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, backend: str
) -> Iterator[Runtime]:
    """A runtime on each backend in turn: the embedded shard and qdrant-client's local mode."""
    rt = Runtime(make_settings(tmp_path, backend), embedder)
    yield rt
    rt.close()
