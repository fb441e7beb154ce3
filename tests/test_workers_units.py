"""The workers' pieces in this process: locks and Redis, the manifest's in-flight work, and the
tasks run eagerly (`Task.apply`) against the real model, a real shard and the real Redis (DB 11).

The real worker processes, kill -9 and Redis restarts are in test_workers.py and
test_workers_fault.py.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from redis import Redis

from core.embedding import Embedder
from core.locks import Locks
from core.manifest import DocStatus, DocumentRecord, Manifest, RunSummary
from core.runtime import Runtime
from core.settings import Settings
from core.types import TenantScope
from ingest.status import read_status
from serving.platform import Platform
from tests.support.services import redis_url
from tests.support.settings import make_settings
from tests.support.workers import WORKER_DB
from workers import context
from workers.app import create_app
from workers.context import WorkerContext
from workers.redis_server import answers, ensure_redis, free_port
from workers.tasks.ingestion import scan_bucket, scan_keys, sync_document, sync_documents


def _context(settings: Settings, embedder: Embedder) -> Iterator[WorkerContext]:
    platform = Platform(Runtime(settings, embedder))
    create_app(settings)
    ctx = context.install(platform)
    yield ctx
    context.close()
    platform.close()


@pytest.fixture
def ctx(tmp_path: Path, embedder: Embedder, redis_db: Redis) -> Iterator[WorkerContext]:
    settings = make_settings(tmp_path, redis_url=redis_url(WORKER_DB), requeue_after_seconds=1.0)
    Path(settings.ingest.bucket_url).mkdir()
    yield from _context(settings, embedder)


def _write(ctx: WorkerContext, key: str, text: str) -> None:
    path = Path(ctx.settings.ingest.bucket_url) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- locks and Redis


def test_lock_excludes_renews_and_releases(redis_db: Redis) -> None:
    locks = Locks(redis_db, "tests")
    first = locks.document("doc.txt", ttl_seconds=0.3)
    assert first.acquire()
    assert not locks.document("doc.txt", ttl_seconds=0.3).acquire()
    time.sleep(0.8)  # well past the TTL: only renewal keeps it
    assert locks.document_held("doc.txt") and not first.lost
    first.release()
    assert not locks.document_held("doc.txt")
    second = locks.document("doc.txt", ttl_seconds=0.3)
    assert second.acquire()
    second.release()


def test_dead_holders_lock_lapses(redis_db: Redis) -> None:
    """A holder killed with its renewal thread leaves a key that expires within one TTL."""
    locks = Locks(redis_db, "tests")
    redis_db.set(locks.key("doc", "doc.txt"), "someone-dead", px=300)
    assert not locks.document("doc.txt", ttl_seconds=1).acquire()
    time.sleep(0.4)
    lock = locks.document("doc.txt", ttl_seconds=1)
    assert lock.acquire()
    lock.release()


def test_each_deployment_has_its_own_locks(redis_db: Redis) -> None:
    """Two deployments on one Redis database: one's scan or document never holds the other's."""
    ours, theirs = Locks(redis_db, "ours"), Locks(redis_db, "theirs")
    with ours.task("scan", 60), ours.document("a.txt", 60):
        assert not theirs.task_held("scan") and not theirs.document_held("a.txt")
        with theirs.task("scan", 60) as held, theirs.document("a.txt", 60) as also:
            assert held and also
        assert ours.task_held("scan") and ours.document_held("a.txt")


def test_ensure_redis_uses_a_live_one_or_starts_its_own(tmp_path: Path) -> None:
    live = ensure_redis(redis_url(WORKER_DB), tmp_path / "redis")
    assert live.url == redis_url(WORKER_DB) and not live.started_here
    dead_url = f"redis://127.0.0.1:{free_port()}/5"
    started = ensure_redis(dead_url, tmp_path / "redis")
    try:
        assert started.started_here and started.url != dead_url
        assert started.url.endswith("/5") and answers(started.url)
    finally:
        started.stop()
    assert not answers(started.url)


# --------------------------------------------------------------------------- the manifest


def test_pending_work_overlays_settled_state(tmp_path: Path) -> None:
    manifest = Manifest.at(tmp_path / "m.sqlite")
    manifest.put(DocumentRecord("old.txt", "default", "old.txt", DocStatus.INDEXED))
    manifest.mark_queued({"new.txt": ("default", "t1"), "old.txt": ("default", "t2")})
    counts = read_status(manifest).counts
    assert counts["queued"] == sum(counts.values()) == 2
    assert manifest.get("old.txt").status == DocStatus.INDEXED  # the syncer still sees this
    assert manifest.mark_processing("old.txt", "default", "t2").attempts == 1
    assert manifest.mark_processing("old.txt", "default", "t3").attempts == 2
    manifest.note_error("old.txt", "ConnectionError: boom")
    current = manifest.current()["old.txt"]
    assert (current.status, current.attempts, current.error) == (
        DocStatus.PROCESSING,
        2,
        "ConnectionError: boom",
    )
    manifest.finish("old.txt", "t2")  # an older task: the newer one's entry stays, attempts reset
    assert manifest.pending()["old.txt"].attempts == 0
    manifest.finish("old.txt", "t3")
    manifest.finish("new.txt", "t1")
    counts = read_status(manifest).counts
    assert counts["indexed"] == sum(counts.values()) == 1
    manifest.close()


# --------------------------------------------------------------------------- tasks, eagerly


def _queued_documents(redis_db: Redis, queue: str) -> int:
    """Documents named by the messages waiting in `queue` (a group task names several)."""
    count = 0
    for raw in redis_db.lrange(queue, 0, -1):
        args = json.loads(base64.b64decode(json.loads(raw)["body"]))[0]
        count += len(args[0]) if isinstance(args[0], list) else 1
    return count


def test_scan_enqueues_once_and_requeues_what_was_lost(ctx: WorkerContext, redis_db: Redis) -> None:
    for name in ("a", "b", "c"):
        _write(ctx, f"{name}.txt", f"document {name}")
    queue = ctx.settings.workers.celery_documents_queue
    first = scan_bucket.apply().get()
    assert (first["sync"], first["delete"], _queued_documents(redis_db, queue)) == (3, 0, 3)
    assert read_status(ctx.runtime.manifest).counts["queued"] == 3
    again = scan_bucket.apply().get()  # the messages are still queued: nothing new to send
    assert (again["sync"], again["in_flight"], _queued_documents(redis_db, queue)) == (0, 3, 3)

    # A task that started but holds no lock died with its worker: enqueue it again at once.
    ctx.runtime.manifest.mark_processing("a.txt", "default", "dead-task")
    with ctx.locks.document("b.txt", 60):
        ctx.runtime.manifest.mark_processing("b.txt", "default", "live-task")
        report = scan_bucket.apply().get()
    assert (report["sync"], report["in_flight"]) == (1, 2)
    time.sleep(1.1)  # past requeue_after: c's message may have been lost with a Redis restart
    report = scan_bucket.apply().get()
    assert report["sync"] == 3 and _queued_documents(redis_db, queue) == 3 + 1 + 3


def test_scan_forgets_the_lost_second_message_of_a_settled_document(ctx: WorkerContext) -> None:
    _write(ctx, "doc.txt", "Settled by the first of two messages.")
    sync_document.apply(("doc.txt",), {"run_id": None}).get()
    # Queued again, and that message died with a broker restart: nothing will ever clear it.
    ctx.runtime.manifest.mark_queued({"doc.txt": ("default", "lost-task")})
    assert read_status(ctx.runtime.manifest).counts["queued"] == 1
    assert scan_bucket.apply().get()["in_flight"] == 0  # still young: left alone
    assert read_status(ctx.runtime.manifest).counts["queued"] == 1
    time.sleep(1.1)  # past requeue_after
    report = scan_bucket.apply().get()
    assert (report["sync"], report["unchanged"]) == (0, 1)
    counts = read_status(ctx.runtime.manifest).counts
    assert (counts["queued"], counts["indexed"]) == (0, 1)


def test_document_task_syncs_and_is_idempotent(ctx: WorkerContext) -> None:
    _write(ctx, "tenants/acme/doc.txt", "Zebras graze on the savanna.")
    first = sync_document.apply(("tenants/acme/doc.txt",), {"run_id": None}).get()
    again = sync_document.apply(("tenants/acme/doc.txt",), {"run_id": None}).get()
    assert (first["outcome"], again["outcome"]) == ("added", "unchanged")
    scope = TenantScope("acme")
    assert ctx.runtime.index.count(scope) == 1
    assert not ctx.runtime.manifest.pending()
    (Path(ctx.settings.ingest.bucket_url) / "tenants/acme/doc.txt").unlink()
    gone = sync_document.apply(("tenants/acme/doc.txt",), {"run_id": None}).get()
    assert gone["outcome"] == "deleted"  # the message said sync; the bucket said gone
    assert ctx.runtime.index.count(scope) == 0


def test_busy_document_is_left_to_its_holder(ctx: WorkerContext, redis_db: Redis) -> None:
    _write(ctx, "doc.txt", "Held by another worker.")
    with ctx.locks.document("doc.txt", 60):
        result = sync_document.apply(("doc.txt",))
    assert ctx.runtime.manifest.get("doc.txt") is None
    assert ctx.runtime.index.count() == 0
    assert result.get()["outcome"] == "busy"
    assert sync_document.apply(("doc.txt",)).get()["outcome"] == "added"


def test_documents_named_like_tasks_never_share_their_locks(
    ctx: WorkerContext, redis_db: Redis
) -> None:
    """A bucket object named `scan` (or `optimize`) locks as a document, never as the task.

    Without a suffix it is quarantined as an unsupported type: settled, with its reason, where a
    shared lock would have skipped the scan or left the document busy."""
    _write(ctx, "scan", "A file that happens to be called scan.")
    with ctx.locks.document("scan", 60):  # a worker is syncing the object `scan`
        report = scan_bucket.apply().get()
    assert "skipped" not in report, report
    assert report["sync"] == 1
    with ctx.locks.task("scan", 60):  # a scan is running
        assert sync_document.apply(("scan",)).get()["outcome"] == "failed"
    record = ctx.runtime.manifest.get("scan")
    assert (record.status, record.error) == (DocStatus.FAILED, "unsupported file type (none)")


def test_run_summary_counts_task_outcomes(ctx: WorkerContext) -> None:
    _write(ctx, "good.txt", "Readable text.")
    (Path(ctx.settings.ingest.bucket_url) / "bad.txt").write_bytes(b"caf\xe9 au lait \xc3\x28")
    run_id = scan_bucket.apply().get()["run_id"]
    for doc in ("good.txt", "bad.txt"):
        sync_document.apply((doc,), {"run_id": run_id}).get()
    run = ctx.runtime.manifest.last_run()
    assert (run.planned, run.completed, run.added, run.failed) == (2, 2, 1, 1)
    assert run.finished_at > 0
    status = read_status(ctx.runtime.manifest)
    assert [r.doc_id for r in status.failed] == ["bad.txt"]
    assert "UTF-8" in status.failed[0].error


def test_worker_deaths_quarantine_until_the_content_changes(ctx: WorkerContext) -> None:
    """Every start counts: a document whose worker died max_attempts times is given up on."""
    _write(ctx, "poison.txt", "Pretend this kills the worker.")
    manifest = ctx.runtime.manifest
    for n in range(ctx.settings.workers.max_attempts):
        manifest.mark_processing("poison.txt", "default", f"died-{n}")
    result = sync_document.apply(("poison.txt",)).get()
    record = manifest.get("poison.txt")
    assert result["outcome"] == "failed" and record.status == DocStatus.FAILED
    assert record.error.startswith("gave up after 3 attempts: its worker stopped")
    assert ctx.runtime.index.count() == 0 and not manifest.pending()
    assert "poison.txt" not in {o.key for o in ctx.ingestion.plan().to_sync}  # quarantined
    time.sleep(0.01)
    _write(ctx, "poison.txt", "A new version.")
    assert "poison.txt" in {o.key for o in ctx.ingestion.plan().to_sync}
    assert sync_document.apply(("poison.txt",)).get()["outcome"] == "added"


def test_hints_enqueue_only_the_named_documents(ctx: WorkerContext, redis_db: Redis) -> None:
    _write(ctx, "a.txt", "A")
    _write(ctx, "b.txt", "B")
    sync_document.apply(("a.txt",)).get()
    (Path(ctx.settings.ingest.bucket_url) / "a.txt").unlink()
    report = scan_keys.apply((["a.txt", "b.txt.meta.json", "never-existed.txt"],)).get()
    assert (report["sync"], report["delete"]) == (1, 1)
    assert ctx.runtime.manifest.pending().keys() == {"a.txt", "b.txt"}


@pytest.fixture
def unreachable_s3(tmp_path: Path, embedder: Embedder, redis_db: Redis) -> Iterator[WorkerContext]:
    settings = make_settings(tmp_path, redis_url=redis_url(WORKER_DB)).updated(
        bucket_url="s3://docs",
        s3_endpoint_url=f"http://127.0.0.1:{free_port()}",
        aws_access_key_id=SecretStr("test"),
        aws_secret_access_key=SecretStr("test"),
    )
    yield from _context(settings, embedder)


def test_transient_errors_are_retried_then_given_up(unreachable_s3: WorkerContext) -> None:
    """A bucket that refuses connections: each attempt fails transiently; after max_attempts
    the document is failed with the error, without stat data so a later scan retries it."""
    assert sync_document.apply(("doc.txt",)).get()["outcome"] == "failed"
    record = unreachable_s3.runtime.manifest.get("doc.txt")
    assert record.status == DocStatus.FAILED and record.attempts == 3
    assert record.error.startswith("gave up after 3 attempts: EndpointConnectionError")
    assert record.size == -1 and not unreachable_s3.runtime.manifest.pending()


def test_a_failing_listing_is_an_error_that_deletes_nothing(unreachable_s3: WorkerContext) -> None:
    """Issue 13, finding 10: an S3 listing that errors is not an empty bucket."""
    manifest = unreachable_s3.runtime.manifest
    manifest.put(DocumentRecord("doc.txt", "default", "s3://docs/doc.txt", DocStatus.INDEXED))
    report = scan_bucket.apply().get()
    assert report["delete"] == 0 and report["error"].startswith("cannot list s3://docs/")
    assert manifest.get_meta("last_scan")["error"] == report["error"]
    assert manifest.get("doc.txt").status == DocStatus.INDEXED and not manifest.pending()


def test_nightly_eval_is_scheduled_only_with_a_dataset(tmp_path: Path) -> None:
    from workers.beat import beat_schedule

    assert "nightly-eval" not in beat_schedule(Settings(data_dir=tmp_path))
    entry = beat_schedule(Settings(data_dir=tmp_path, eval_dataset=tmp_path, eval_nightly_hour=3))
    assert entry["nightly-eval"]["task"] == "rag.eval.nightly"
    assert entry["nightly-eval"]["schedule"].hour == {3}


def test_the_optimise_task_indexes_what_the_workers_wrote(
    tmp_path: Path, embedder: Embedder, redis_db: Redis
) -> None:
    """Beat schedules it; it builds the vector index once enough chunks wait, holds a Redis lock
    so two workers never optimise at once, and is a no-op with nothing to do."""
    from workers.beat import beat_schedule
    from workers.tasks.maintenance import optimize_index

    settings = make_settings(
        tmp_path, redis_url=redis_url(WORKER_DB), index_optimize_min_unindexed=20
    )
    assert beat_schedule(settings)["optimize-index"]["task"] == "rag.index.optimize"
    Path(settings.ingest.bucket_url).mkdir()
    for ctx in _context(settings, embedder):
        assert optimize_index.apply().get()["optimized"] is False
        for n in range(30):
            _write(ctx, f"doc{n}.txt", f"document {n} about rivers, granite and protein folding")
        scan_bucket.apply().get()
        for key in [f"doc{n}.txt" for n in range(30)]:
            sync_document.apply((key,)).get()
        assert ctx.runtime.index.count() == 30
        with ctx.locks.task("optimize", ttl_seconds=5):
            assert "skipped" in optimize_index.apply().get()
        assert optimize_index.apply().get()["optimized"] is True
        assert optimize_index.apply().get()["optimized"] is False


# --------------------------------------------------------------------------- group tasks


def _counting(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[int]:
    """Count calls of a real method, which still runs."""
    calls: list[int] = []
    real = getattr(obj, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


def test_a_group_task_settles_each_document_as_its_own_task_would(
    ctx: WorkerContext, redis_db: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = ctx.runtime.manifest
    _write(ctx, "one.txt", "Zebras graze on the savanna.")
    _write(ctx, "two.txt", "Herons wade in the shallows.")
    (Path(ctx.settings.ingest.bucket_url) / "bad.txt").write_bytes(b"caf\xe9 au lait \xc3\x28")
    _write(ctx, "poison.txt", "Its worker died every time.")
    _write(ctx, "held.txt", "Another worker has it.")
    docs = ["one.txt", "two.txt", "bad.txt", "poison.txt", "held.txt"]
    task_ids = [f"task-{d}" for d in docs]
    manifest.mark_queued({d: ("default", t) for d, t in zip(docs, task_ids, strict=True)})
    for n in range(ctx.settings.workers.max_attempts):
        manifest.mark_processing("poison.txt", "default", f"died-{n}")
    manifest.mark_queued({"poison.txt": ("default", "task-poison.txt")})
    run_id = manifest.record_run(RunSummary(planned=len(docs)))
    embeds = _counting(monkeypatch, ctx.runtime.embedder, "embed_documents")
    upserts = _counting(monkeypatch, ctx.runtime.index, "upsert")

    with ctx.locks.document("held.txt", 60):
        results = sync_documents.apply((docs, task_ids), {"run_id": run_id}).get()

    outcomes = {r["doc_id"]: r["outcome"] for r in results}
    assert outcomes == {"one.txt": "added", "two.txt": "added", "bad.txt": "failed"}
    assert (len(embeds), len(upserts)) == (1, 1)  # the two good documents, together
    assert "UTF-8" in manifest.get("bad.txt").error
    # The held document, and the one tried before, went on as tasks of their own, still queued
    # under their task ids: only its own attempts count against a document.
    assert manifest.pending().keys() == {"held.txt", "poison.txt"}
    assert _queued_documents(redis_db, ctx.settings.workers.celery_documents_queue) == 2
    run = manifest.last_run()
    assert (run.completed, run.added, run.failed) == (3, 2, 1)
    poison = sync_document.apply(("poison.txt",), {"run_id": run_id}).get()
    assert poison["outcome"] == "failed"  # as its own task: given up after 3 attempts
    assert manifest.get("poison.txt").error.startswith("gave up after 3 attempts")
    again = sync_documents.apply((["one.txt", "two.txt"], ["t1", "t2"])).get()
    assert {r["outcome"] for r in again} == {"unchanged"}  # idempotent


def test_a_failing_group_is_synced_again_one_by_one(ctx: WorkerContext) -> None:
    """A listener that raises on one document fails the group's sync: that document is
    quarantined with the error, as its own task would be, and the others are indexed."""

    class Exploding:
        def on_indexed(self, doc: object, point_ids: list[str]) -> None:
            if doc.doc_id == "explodes.txt":  # type: ignore[attr-defined]
                raise ValueError("listener broke")

        def on_deleted(self, scope: object, doc_id: str) -> None:
            pass

    ctx.ingestion.syncer._listeners.append(Exploding())
    docs = ["a.txt", "explodes.txt", "b.txt"]
    for d in docs:
        _write(ctx, d, f"The text of {d}.")
    results = sync_documents.apply((docs, [f"t-{d}" for d in docs])).get()
    outcomes = {r["doc_id"]: r["outcome"] for r in results}
    assert outcomes == {"a.txt": "added", "explodes.txt": "failed", "b.txt": "added"}
    assert (
        "internal error: ValueError: listener broke"
        in ctx.runtime.manifest.get("explodes.txt").error
    )
    assert ctx.runtime.index.count() == 2
    assert not ctx.runtime.manifest.pending()


def test_a_scan_groups_documents_over_the_worker_threads(
    ctx: WorkerContext, redis_db: Redis
) -> None:
    for i in range(5):
        _write(ctx, f"d{i}.txt", f"document {i}")
    scan_bucket.apply().get()
    # worker_concurrency 2: groups of 3 and 2, not five messages
    assert redis_db.llen(ctx.settings.workers.celery_documents_queue) == 2
    assert _queued_documents(redis_db, ctx.settings.workers.celery_documents_queue) == 5
