"""Real worker processes (`celery -A workers worker --pool=threads --beat`) on a local bucket,
with the real Redis (DB 11), the real model and the real embedded shard.

The embedded shard admits one process, so the test reads the index only while no worker runs:
it waits until a scan that started after the change found nothing to do, stops the worker
(warm shutdown flushes the shard), and then opens the index itself. The expected chunks are built
independently here, with the same chunker, from the files on disk.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis import Redis

from core.embedding import Embedder
from core.manifest import Manifest
from core.runtime import Runtime
from core.settings import Settings
from core.types import TenantScope
from ingest.bucket import Bucket, LocalBucket, ObjectInfo, sha256
from ingest.chunking import Chunker
from ingest.documents import DocumentBuilder, MetaLimits
from retrieval.hybrid import HybridRetriever, RetrievalConfig
from tests.fixtures_docs import corrupt_pdf, make_docx, make_pdf
from tests.support.services import redis_url
from workers.app import configure
from workers.process import WorkerProcess
from workers.status import converged, read_status
from workers.tasks.ingestion import sync_document

REDIS_URL = redis_url(11)
pytestmark = pytest.mark.slow

# ------------------------------------------------------------------ shared with the other files


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
        return Manifest(self.settings.manifest_path)


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


def run_until_converged(dep: Deployment, name: str):
    """Start a worker, wait until it has converged on the bucket as it is now, stop it."""
    started = time.time()
    worker = dep.worker(name)
    try:
        return wait_converged(dep, started, worker)
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
    chunker = Chunker.for_embedder(embedder, settings.chunk_size, settings.chunk_overlap)
    return DocumentBuilder(chunker, settings.default_tenant, MetaLimits.from_settings(settings))


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


# ------------------------------------------------------------------ the local-folder scenario


@pytest.fixture
def redis_db() -> Iterator[Redis]:
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    yield redis
    redis.flushdb()
    redis.close()


def test_drop_replace_delete_with_real_workers(
    tmp_path: Path, embedder: Embedder, redis_db: Redis
) -> None:
    bucket_dir = tmp_path / "bucket"
    (bucket_dir / "tenants" / "acme").mkdir(parents=True)
    dep = deployment(tmp_path, str(bucket_dir), REDIS_URL)
    keys = [f"notes/doc {n:02d}.txt" for n in range(47)]
    for n, key in enumerate(keys):
        (bucket_dir / key).parent.mkdir(exist_ok=True)
        (bucket_dir / key).write_text(document_text(n))
    (bucket_dir / "tenants/acme/report.pdf").write_bytes(make_pdf(["Acme quarterly quokka900."]))
    (bucket_dir / "tenants/acme/memo.docx").write_bytes(make_docx(["Memo about quokka901."]))
    (bucket_dir / "tenants/acme/résumé été.md").write_text("# CV\n\nExperience with quokka902.")
    bad = {
        "bad/corrupt.pdf": (corrupt_pdf(), "corrupt PDF"),
        "bad/empty.txt": (b"", "empty document"),
        "bad/huge.txt": (b"x" * 60_001, "over the 60000-byte limit"),
        "bad/latin1.txt": ("café crème".encode("latin-1"), "not valid UTF-8"),
    }
    (bucket_dir / "bad").mkdir()
    for key, (data, _) in bad.items():
        (bucket_dir / key).write_bytes(data)

    status = run_until_converged(dep, "w1")
    assert status.counts["indexed"] == 50 and status.counts["failed"] == 4
    assert {r.doc_id: r.error for r in status.failed}.keys() == bad.keys()
    for record in status.failed:
        assert bad[record.doc_id][1] in record.error, record

    settings = dep.settings
    builder = builder_for(embedder, settings)
    bucket = LocalBucket(bucket_dir)
    good = [o for o in bucket.list() if not o.key.startswith("bad/")]
    with Runtime(settings, embedder) as rt:
        assert_index_matches(rt, expected_points(bucket, good, builder))
        before = index_contents(rt)
        retriever = HybridRetriever(rt.index, embedder, RetrievalConfig(50, 60))
        for n, key in enumerate(keys):
            hits = retriever.retrieve(TenantScope("default"), f"quokka{n}", 1, "bm25")
            assert hits[0].payload["doc_id"] == key
        acme = retriever.retrieve(TenantScope("acme"), "quokka902", 1, "hybrid")
        assert acme[0].payload["doc_id"] == "tenants/acme/résumé été.md"

    # Replace 5 (one paragraph each), delete 5; deliver one sync task twice, concurrently.
    replaced, deleted = keys[:5], keys[5:10]
    for key in replaced:
        n = keys.index(key)
        (bucket_dir / key).write_text(document_text(n, edit=3))
    for key in deleted:
        (bucket_dir / key).unlink()
    configure(settings)
    for _ in range(2):
        sync_document.apply_async((replaced[0],), task_id="the-same-task")

    status = run_until_converged(dep, "w2")
    assert status.counts["indexed"] == 45 and status.counts["deleted"] == 5
    run = status.last_run  # the duplicated task may settle replaced[0] before the scan runs
    assert run is not None and run.deleted == 5 and run.modified in (4, 5)
    log = (tmp_path / "w2.log").read_text()
    assert log.count("Task rag.sync_document[the-same-task] succeeded") == 2

    good = [o for o in bucket.list() if not o.key.startswith("bad/")]
    expected = expected_points(bucket, good, builder)
    with Runtime(settings, embedder) as rt:
        assert_index_matches(rt, expected)
        after = index_contents(rt)
    for key in keys[10:]:
        assert after[key] == before[key]  # untouched documents: not a point changed
    for key in replaced:
        old, new = before[key][0], after[key][0]
        assert old != new and old & new  # the edited paragraph's chunks changed, not all
