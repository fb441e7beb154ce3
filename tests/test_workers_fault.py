"""Crash safety: kill -9 the worker mid-batch and restart Redis (losing every queued message)
mid-run, while documents are replaced and deleted; after the next clean scan the index holds
exactly the bucket's content.

The test runs its own redis-server on a free loopback port without persistence, so a restart
really loses the queues and the locks, and the shared Redis is left alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.embedding import Embedder
from core.manifest import DocStatus
from core.runtime import Runtime
from ingest.bucket import LocalBucket
from tests.support.workers import (
    Deployment,
    OwnRedis,
    assert_index_matches,
    builder_for,
    deployment,
    expected_points,
    wait_converged,
)

pytestmark = pytest.mark.slow
DOCS = 500


def _count(dep: Deployment, status: DocStatus) -> int:
    manifest = dep.manifest()
    try:
        return sum(r.status == status for r in manifest.all().values())
    finally:
        manifest.close()


def _wait_for(dep: Deployment, indexed: int, worker_alive: object, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while _count(dep, DocStatus.INDEXED) < indexed:
        assert time.monotonic() < deadline and worker_alive(), "no progress"
        time.sleep(0.2)


def test_kill_9_and_redis_restart_converge_exactly(
    tmp_path: Path, embedder: Embedder, own_redis: OwnRedis
) -> None:
    bucket_dir = tmp_path / "bucket"
    bucket_dir.mkdir()
    for n in range(DOCS):
        (bucket_dir / f"doc{n:03d}.txt").write_text(f"Small document {n} about quokka{n}.")
    dep = deployment(tmp_path, str(bucket_dir), own_redis.url)

    worker = dep.worker("w1")
    _wait_for(dep, 60, lambda: worker.alive)
    worker.kill()  # kill -9, its embedded beat too, mid-batch
    killed_at = _count(dep, DocStatus.INDEXED)
    assert killed_at < DOCS
    manifest = dep.manifest()
    in_flight = manifest.pending()
    manifest.close()
    assert in_flight  # work was queued or running when it died

    # The bucket changes while no worker runs, and again after the restart.
    for n in range(0, 20):
        (bucket_dir / f"doc{n:03d}.txt").unlink()
    for n in range(20, 40):
        (bucket_dir / f"doc{n:03d}.txt").write_text(f"Replaced document {n}, quokka{n} v2.")

    worker = dep.worker("w2")
    try:
        _wait_for(dep, killed_at + 100, lambda: worker.alive)
        own_redis.restart()  # queued messages, unacked deliveries and locks: all gone
        restarted = time.time()
        for n in range(40, 50):
            (bucket_dir / f"doc{n:03d}.txt").unlink()
        wait_converged(dep, restarted, worker)
    finally:
        worker.stop()

    bucket = LocalBucket(bucket_dir)
    expected = expected_points(bucket, list(bucket.list()), builder_for(embedder, dep.settings))
    assert len(expected) == DOCS - 30
    with Runtime(dep.settings, embedder) as rt:
        assert_index_matches(rt, expected)
    manifest = dep.manifest()
    states = {doc_id: r.status for doc_id, r in manifest.current().items()}
    manifest.close()
    assert {d for d, s in states.items() if s != DocStatus.DELETED} == expected.keys()
    assert {s for d, s in states.items() if d not in expected} <= {DocStatus.DELETED}
    assert {s for d, s in states.items() if d in expected} == {DocStatus.INDEXED}
