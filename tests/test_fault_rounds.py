"""The fault suite (issue 7): ten rounds over 1,000 documents in four tenants, each round changing
the bucket (random replaces, deletes and additions) and then breaking something mid-ingestion:

- every round: kill -9 the worker process while it works;
- rounds 3, 6, 9: also restart Redis mid-run (every queued message, delivery and lock is lost);
- rounds 4, 8: also corrupt the embedding cache file while nothing runs;
- rounds 5, 10: instead run `rag up` (API, worker pool and beat in one process) and kill -9 it
  while clients are searching over HTTP.

After each round a clean worker runs until a full scan finds nothing to do, and then the index
holds exactly the bucket's content (every document's chunks with its current hash, no duplicate
point, no orphan), the manifest agrees, and the graph holds exactly the live documents with
exactly their chunks. The log line per round is the report: rounds survived and anything lost.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from core.embedding import Embedder
from core.manifest import DocStatus
from core.runtime import Runtime
from core.state.stores import EMBEDDINGS
from graph.factory import open_graph_store
from ingest.bucket import LocalBucket
from ingest.documents import tenant_of
from tests.support.workers import (
    Deployment,
    OwnRedis,
    assert_index_matches,
    builder_for,
    deployment,
    expected_points,
    index_contents,
    wait_converged,
)
from workers.redis_server import free_port

pytestmark = pytest.mark.slow

DOCS, ROUNDS = 1_000, 10
FOLDERS = ["", "tenants/north/", "tenants/south/", "tenants/east/"]
ADMIN = "fault-suite-operator-key"
PEOPLE = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Edsger Dijkstra", "Barbara Liskov"]
PLACES = ["Geneva", "Lisbon", "Nairobi", "Osaka", "Quito", "Tromso"]


def _text(rnd: random.Random, n: int, version: int) -> str:
    who, where = rnd.choice(PEOPLE), rnd.choice(PLACES)
    return f"Record {n} version {version}: {who} met the committee in {where} about puffin{n}."


def _mutate(bucket: Path, rnd: random.Random, live: dict[str, int], next_id: list[int]) -> None:
    """Replace 20, delete 10 and add 10 documents."""
    keys = sorted(live)
    for key in rnd.sample(keys, 20):
        live[key] += 1
        (bucket / key).write_text(_text(rnd, int(key.split("doc")[1][:4]), live[key]))
    for key in rnd.sample(keys, 10):
        del live[key]
        (bucket / key).unlink()
    for _ in range(10):
        _add(bucket, rnd, live, next_id)


def _add(bucket: Path, rnd: random.Random, live: dict[str, int], next_id: list[int]) -> None:
    n = next_id[0]
    next_id[0] += 1
    key = f"{FOLDERS[n % len(FOLDERS)]}doc{n:04d}.txt"
    (bucket / key).parent.mkdir(parents=True, exist_ok=True)
    (bucket / key).write_text(_text(rnd, n, 0))
    live[key] = 0


def _written(dep: Deployment) -> dict[str, tuple[str, str]]:
    """Each record's status and content hash: any sync or delete the process settles shows here
    (a count of indexed documents does not: a round's adds and deletes cancel out)."""
    manifest = dep.manifest()
    try:
        return {d: (r.status, r.content_hash) for d, r in manifest.all().items()}
    finally:
        manifest.close()


def _progress_then(
    dep: Deployment, alive: object, rnd: random.Random, start: dict[str, tuple[str, str]]
) -> None:
    """Let the process get going on this round's work: a random 1 to 6 s after it first writes.
    `start` is the manifest as it was before the process started, so work it did at once counts."""
    deadline = time.monotonic() + 180
    while _written(dep) == start:
        assert alive(), "the process died before the fault"  # type: ignore[operator]
        assert time.monotonic() < deadline, "no progress before the fault"
        time.sleep(0.1)
    time.sleep(rnd.uniform(1, 6))


def _corrupt(path: Path, rnd: random.Random) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(20):
        at = rnd.randrange(0, max(1, len(data) - 512))
        data[at : at + 512] = rnd.randbytes(512)
    path.write_bytes(bytes(data))


class Searcher(threading.Thread):
    """Searches over HTTP until told to stop; counts answers and how requests ended."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.ok, self.failed = url, threading.Event(), 0, 0
        self.other: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.stop.is_set():
                try:
                    r = client.post(
                        "/v1/search",
                        json={"query": "puffin committee Lisbon", "top_k": 5},
                        headers={"X-API-Key": ADMIN},
                    )
                    self.ok += r.status_code == 200
                except httpx.TransportError:
                    self.failed += 1  # the server died mid-request: a clean connection error
                    time.sleep(0.1)
                except Exception as exc:  # anything else is a finding
                    self.other.append(repr(exc))


def _kill_rag_up_during_searches(dep: Deployment, tmp: Path, rnd: random.Random) -> str:
    port = free_port()
    log = (tmp / f"up-{port}.log").open("wb")
    code = "from core.settings import get_settings; from workers.embedded import run_up; "
    code += "run_up(get_settings())"
    env = {**os.environ, **dep.env, "RAG_API_PORT": str(port), "RAG_ADMIN_API_KEY": ADMIN}
    before = _written(dep)
    up = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,
    )
    searcher = Searcher(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 180
        while True:
            assert up.poll() is None and time.monotonic() < deadline, "rag up did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        searcher.start()
        _progress_then(dep, lambda: up.poll() is None, rnd, before)
        answered = searcher.ok
        os.killpg(up.pid, signal.SIGKILL)
        up.wait(timeout=30)
        time.sleep(1)  # requests in flight end with connection errors, none hang
    finally:
        searcher.stop.set()
        searcher.join(timeout=60)
        log.close()
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
    assert not searcher.is_alive() and not searcher.other, searcher.other
    assert answered > 0
    return f"rag up killed after {answered} searches answered"


def _assert_converged(dep: Deployment, embedder: Embedder, live: dict[str, int]) -> None:
    bucket = LocalBucket(Path(dep.settings.ingest.bucket_url))
    objects = list(bucket.list())
    assert sorted(o.key for o in objects) == sorted(live)
    expected = expected_points(bucket, objects, builder_for(embedder, dep.settings))
    with Runtime(dep.settings, embedder) as rt:
        assert_index_matches(rt, expected)  # no duplicate, no orphan, current hashes
        chunks = {doc: ids for doc, (ids, _) in index_contents(rt).items()}
    manifest = dep.manifest()
    try:
        states = {d: r.status for d, r in manifest.current().items()}
    finally:
        manifest.close()
    assert {d for d, s in states.items() if s != DocStatus.DELETED} == set(live)
    assert {s for d, s in states.items() if d in live} == {DocStatus.INDEXED}
    store = open_graph_store(dep.settings)
    try:
        for folder in FOLDERS:
            scope = tenant_of(f"{folder}x.txt", dep.settings.default_tenant)
            docs = {k for k in live if tenant_of(k, dep.settings.default_tenant) == scope}
            with store.read(scope) as graph:
                assert set(graph.docs) == docs, scope
                for doc_id, facts in graph.docs.items():
                    assert set(facts) == chunks[doc_id], doc_id
    finally:
        store.close()


def test_ten_rounds_of_faults_converge_exactly(
    tmp_path: Path, embedder: Embedder, own_redis: OwnRedis
) -> None:
    rnd = random.Random(20261123)
    bucket_dir = tmp_path / "bucket"
    bucket_dir.mkdir()
    live: dict[str, int] = {}
    next_id = [0]
    for _ in range(DOCS):
        _add(bucket_dir, rnd, live, next_id)
    dep = deployment(
        tmp_path,
        str(bucket_dir),
        own_redis.url,
        RAG_DOCUMENT_LOCK_TTL_SECONDS="3",
        RAG_INGEST_BATCH_DOCS="16",
    )
    report = []
    for round_no in range(1, ROUNDS + 1):
        if round_no > 1:
            _mutate(bucket_dir, rnd, live, next_id)
        if round_no in (4, 8):
            _corrupt(dep.settings.data_dir / EMBEDDINGS.sqlite_file, rnd)
        if round_no in (5, 10):
            what = _kill_rag_up_during_searches(dep, tmp_path, rnd)
        else:
            before = _written(dep)
            worker = dep.worker(f"r{round_no}")
            try:
                _progress_then(dep, lambda w=worker: w.alive, rnd, before)
                if round_no in (3, 6, 9):
                    own_redis.restart()
                    time.sleep(rnd.uniform(0.5, 2))
                worker.kill()
            finally:
                worker.stop()
            what = "worker killed" + (" after a Redis restart" if round_no in (3, 6, 9) else "")
        if round_no in (4, 8):
            set_aside = len(list(dep.settings.data_dir.glob("embeddings.sqlite.corrupt-*")))
            what += f", embedding cache corrupted ({set_aside} corrupt files set aside so far)"
        started = time.time()
        worker = dep.worker(f"r{round_no}-clean")
        try:
            wait_converged(dep, started, worker, timeout=600)
        finally:
            worker.stop()
        _assert_converged(dep, embedder, live)
        report.append(f"round {round_no}: {what}; converged on {len(live)} documents, 0 lost")
        print(report[-1])
    assert len(report) == ROUNDS
