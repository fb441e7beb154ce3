"""Worker-process deployments for tests and bench scripts: a data dir, a bucket and a Redis as the
worker processes see them, waiting until they converge, and the index they should converge to,
built independently from the files with the same chunker.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest
from celery import Celery
from redis import Redis

from core.embedding import Embedder
from core.manifest import Manifest
from core.runtime import Runtime
from core.settings import Settings
from ingest.bucket import Bucket, ObjectInfo, sha256
from ingest.chunking import Chunker
from ingest.documents import DocumentBuilder, MetaLimits
from ingest.status import read_status
from tests.support.services import redis_url
from workers import deployment as deployments
from workers.process import WorkerProcess
from workers.redis_server import free_port, start_redis_server

WORKER_DB = 11  # the worker tests' database of the suite's Redis, flushed by `redis_db`


@dataclass
class Deployment:
    """One data dir, bucket and Redis, as the worker processes see them through RAG_ variables."""

    tmp: Path
    env: dict[str, str]
    settings: Settings = field(init=False)

    def __post_init__(self) -> None:
        fields = {k.removeprefix("RAG_").lower(): v for k, v in self.env.items()}
        self.settings = Settings(**fields)

    def worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(self.settings, self.env, self.tmp / f"{name}.log").start()

    def manifest(self) -> Manifest:
        return Manifest.open(self.settings)

    def start_up(self, log: BinaryIO) -> subprocess.Popen[bytes]:
        """`run_up` (what `rag up` runs) in a child process on this deployment, logging to `log`."""
        code = "from core.settings import get_settings; from workers.embedded import run_up; "
        code += "run_up(get_settings())"
        return subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )


def deployment(tmp: Path, bucket_url: str, redis_url: str, **extra: str) -> Deployment:
    env = {
        "RAG_DATA_DIR": str(tmp / "data"),
        "RAG_BUCKET_URL": bucket_url,
        "RAG_REDIS_URL": redis_url,
        "RAG_SCAN_INTERVAL_SECONDS": "1",
        "RAG_REQUEUE_AFTER_SECONDS": "5",
        "RAG_DOCUMENT_LOCK_TTL_SECONDS": "3",
        "RAG_RETRY_BACKOFF_SECONDS": "0.5",
        "RAG_MAX_FILE_BYTES": "60000",
        **extra,
    }
    return Deployment(tmp, env)


def send_as(sender: Settings | None, redis_url: str, task: str, args: tuple, queue: str) -> str:
    """Send `task` to the Redis at `redis_url` as `sender`'s deployment would (None: as a client
    that names no deployment), through a Celery client of its own: `workers.app.create_app` here
    would make this deployment's app the process's default for every later test. Its task id."""
    client = Celery(broker=redis_url, set_as_current=False)
    identity = deployments.Deployment.of(sender).header() if sender is not None else None
    headers = {deployments.HEADER: identity} if identity is not None else {}
    try:
        return client.send_task(task, args, queue=queue, headers=headers).id
    finally:
        client.close()


def converged(manifest: Manifest, since: float) -> bool:
    """A full scan that started after `since` found nothing to enqueue, and nothing is in flight:
    the index held what the bucket held when that scan looked."""
    scan = manifest.get_meta("last_scan")
    return (
        scan is not None
        and scan["started_at"] > since
        and not scan.get("error")
        and scan["sync"] == scan["delete"] == scan["in_flight"] == 0
        and not manifest.pending()
    )


def wait_converged(dep: Deployment, since: float, worker: WorkerProcess, timeout: float = 240):
    """Until a full scan that started after `since` found the index already matching."""
    manifest = dep.manifest()
    deadline = time.monotonic() + timeout
    try:
        while not converged(manifest, since):
            if not worker.alive or time.monotonic() > deadline:
                log = worker.log.read_text(errors="replace")[-4000:]
                pytest.fail(f"not converged: {read_status(manifest).counts}\n{log}")
            time.sleep(0.5)
        return read_status(manifest)
    finally:
        manifest.close()


def run_until_converged(dep: Deployment, name: str, also: Callable[[str], bool] = lambda log: True):
    """Start a worker, wait until it has converged on the bucket as it is now and `also` holds
    of its log (say, a task delivered twice ran twice), stop it."""
    started = time.time()
    worker = dep.worker(name)
    try:
        status = wait_converged(dep, started, worker)
        deadline = time.monotonic() + 240
        while not also(log := worker.log.read_text(errors="replace")):
            if not worker.alive or time.monotonic() > deadline:
                pytest.fail(f"the worker's log never showed what the test waits for\n{log[-4000:]}")
            time.sleep(0.5)
        return status
    finally:
        worker.stop()


def expected_points(bucket: Bucket, objects: list[ObjectInfo], builder: DocumentBuilder):
    """{doc_id: (point ids, content hash)} built here from the bucket's bytes."""
    expected = {}
    for obj in objects:
        data = bucket.read(obj.key, 10**9)
        doc = builder.build(obj, bucket.uri(obj.key), data, sha256(data), None)
        expected[obj.key] = ({doc.point_id(c) for c in doc.chunks}, sha256(data))
    return expected


def index_contents(runtime: Runtime) -> dict[str, tuple[set[str], set[str]]]:
    """{doc_id: (point ids, stored content hashes)}; fails on a point id seen twice."""
    points = list(runtime.index.scroll(None, ["doc_id", "content_hash"]))
    duplicates = [pid for pid, n in Counter(pid for pid, _ in points).items() if n > 1]
    assert not duplicates
    found: dict[str, tuple[set[str], set[str]]] = {}
    for pid, payload in points:
        ids, hashes = found.setdefault(payload["doc_id"], (set(), set()))
        ids.add(pid)
        hashes.add(payload["content_hash"])
    return found


def assert_index_matches(runtime: Runtime, expected: dict[str, tuple[set[str], str]]) -> None:
    """Exactly the expected documents, each with exactly its chunks and its current hash."""
    found = index_contents(runtime)
    assert sorted(found) == sorted(expected)
    for doc_id, (ids, content_hash) in expected.items():
        assert found[doc_id] == (ids, {content_hash}), doc_id
    assert runtime.index.count() == sum(len(ids) for ids, _ in expected.values())


def builder_for(embedder: Embedder, settings: Settings) -> DocumentBuilder:
    chunker = Chunker.for_embedder(
        embedder, settings.ingest.chunk_size, settings.ingest.chunk_overlap
    )
    return DocumentBuilder(
        chunker, settings.default_tenant, MetaLimits.from_settings(settings.ingest)
    )


def document_text(n: int, edit: int | None = None) -> str:
    """Paragraphs long enough to make several chunks; `edit` rewrites one paragraph."""
    rng = random.Random(n)
    words = ["river", "granite", "protein", "lattice", "harbor", "ember", "signal", "meadow"]
    paragraphs = []
    for p in range(8):
        body = " ".join(rng.choice(words) for _ in range(90))
        tag = f"revised{n}x{p}" if p == edit else f"marker{n}x{p}"
        paragraphs.append(f"Paragraph {p} of document {n} mentions {tag}. {body}.")
    return f"Unique term quokka{n}.\n\n" + "\n\n".join(paragraphs)


@pytest.fixture
def redis_db() -> Iterator[Redis]:
    redis = Redis.from_url(redis_url(WORKER_DB))
    redis.flushdb()
    yield redis
    redis.flushdb()
    redis.close()


class OwnRedis:
    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server") or pytest.skip("no redis-server binary")
        self.directory, self.port = directory, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = start_redis_server(self.binary, directory, self.port, persist=False)

    def restart(self) -> None:
        """Kill -9 and start again on the same port: every message and lock is gone."""
        self.process.kill()
        self.process.wait()
        self.process = start_redis_server(self.binary, self.directory, self.port, persist=False)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path / "redis")
    yield redis
    redis.stop()
