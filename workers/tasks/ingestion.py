"""Ingestion tasks: the reconciling scan and the per-document sync and delete.

The scan enqueues work and marks it queued in the manifest (documents to sync in groups, so a
burst of small files costs a few model calls, not one each); a document task locks the document,
re-reads its current state from the bucket, and lets the syncer bring the index in line (sync if
the object is there, delete if it is not), whatever its message said. So a duplicate, stale or
reordered message costs at most a hash, and a lost one is re-enqueued by a later scan: one still
queued after `requeue_after_seconds`, or one marked processing whose lock lapsed with its worker.

Attempts are counted per document version in the manifest, so they survive a worker killed
mid-task: transient errors (network, Redis, a busy database) are retried with full-jitter
exponential backoff; past `RAG_MAX_ATTEMPTS` the document is quarantined until its content changes.
Parse errors never reach here as errors: the syncer quarantines them with their reason.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy.exc
from celery import Task, shared_task
from qdrant_client.http.exceptions import ResponseHandlingException
from redis.exceptions import RedisError

from core.manifest import DocStatus, ObjectState, PendingWork, RunSummary
from ingest.bucket import SIDECAR_SUFFIX, BucketUnavailableError, ObjectInfo
from ingest.documents import tenant_id_of
from ingest.held_deletes import held_deletes
from ingest.isolation import ParserStartError
from ingest.sync import SyncOutcome
from workers import names
from workers.context import WorkerContext, context
from workers.objects import current

log = logging.getLogger(__name__)

_SCAN_LOCK = "scan"
_S3_TRANSIENT = {"SlowDown", "Throttling", "RequestTimeout", "InternalError", "ServiceUnavailable"}


def is_transient(exc: BaseException) -> bool:
    """Errors worth another try later: the network, Redis, a locked or unreachable database (the
    manifest's SQLite file, the state database), a busy store."""
    return _s3_transient(exc) or isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | RedisError
        | ResponseHandlingException
        | sqlite3.OperationalError
        | sqlalchemy.exc.OperationalError
        | BucketUnavailableError
        | ParserStartError,
    )


def _s3_transient(exc: BaseException) -> bool:
    """S3 throttling, 5xx answers and botocore's network errors. botocore is looked up, not
    imported: without the s3 extra it is never loaded, and then no S3 error was raised."""
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None:
        return False
    if isinstance(exc, botocore.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _S3_TRANSIENT or status >= 500
    return isinstance(exc, botocore.BotoCoreError)


def _tenant(ctx: WorkerContext, doc_id: str) -> str:
    return tenant_id_of(doc_id, ctx.settings.default_tenant)


# --------------------------------------------------------------------------- scans


@shared_task(name=names.SCAN_BUCKET)
def scan_bucket() -> dict[str, Any]:
    """Diff the whole bucket against the manifest and the index; enqueue what differs."""
    ctx = context()
    with ctx.locks.task(_SCAN_LOCK, ctx.settings.workers.document_lock_ttl_seconds) as held:
        if not held:
            return {"skipped": "another scan is running"}
        started = time.time()
        try:
            plan = ctx.ingestion.plan()
        except BucketUnavailableError as exc:
            # Not an empty bucket: nothing is deleted, and status says why nothing moves.
            log.error("scan failed, nothing deleted or enqueued: %s", exc)
            report = {"sync": 0, "delete": 0, "in_flight": 0, "unchanged": 0, "error": str(exc)}
            ctx.runtime.manifest.set_meta("last_scan", {"started_at": started, **report})
            return report
        changed = {o.key for o in plan.to_sync} | set(plan.to_delete)
        _drop_stale_pending(ctx, changed, started)
        report = _enqueue(ctx, [o.key for o in plan.to_sync], plan.to_delete, plan.unchanged)
        if plan.unreadable:
            report["unreadable"] = plan.unreadable
            log.error("folders the scan cannot read (kept as they were): %s", plan.unreadable)
        if plan.held:
            report["held_deletes"] = {t: len(ids) for t, ids in plan.held.items()}
            log.warning(
                "deletes held until an operator confirms them (`rag deletes confirm`): %s",
                report["held_deletes"],
            )
        ctx.runtime.manifest.set_meta("last_scan", {"started_at": started, **report})
        return report


@shared_task(name=names.SCAN_KEYS)
def scan_keys(keys: list[str]) -> dict[str, Any]:
    """A watcher's hint that these keys changed: enqueue them without listing the bucket.

    A sidecar's change is its document's change. A key that is gone is enqueued only when the
    manifest knows it; anything else a hint misses, the periodic scan still finds. Deletes that
    the scan's guard would hold (too many of one tenant at once, or the tenant has deletes held
    already) are left to a full scan, which holds them and says so.
    """
    ctx = context()
    docs = sorted({k.removesuffix(SIDECAR_SUFFIX) for k in keys})
    records = ctx.runtime.manifest.object_states()
    to_sync, gone = [], []
    for key in docs:
        obj, _ = current(ctx.bucket, key)
        if obj is not None:
            to_sync.append(key)
        elif key in records and records[key].status != DocStatus.DELETED:
            gone.append(key)
    to_delete = _unguarded_deletes(ctx, gone, records)
    if len(to_delete) < len(gone):
        scan_bucket.delay()
    return _enqueue(ctx, to_sync, to_delete, unchanged=0)


def _unguarded_deletes(
    ctx: WorkerContext, gone: list[str], records: dict[str, ObjectState]
) -> list[str]:
    """The hinted deletes a full scan would not hold back."""
    guard = ctx.ingestion.scanner.guard
    held = held_deletes(ctx.runtime.manifest)
    known = (d for d, record in records.items() if record.status != DocStatus.DELETED)
    return [
        doc_id
        for tenant, doc_ids, documents in guard.by_tenant(gone, known)
        if tenant not in held and not guard.holds(len(doc_ids), documents)
        for doc_id in doc_ids
    ]


def _in_flight(ctx: WorkerContext, work: PendingWork, now: float) -> bool:
    """Whether a task already holds the document, so the scan need not enqueue it again."""
    if work.status == DocStatus.QUEUED:
        return now - work.since < ctx.settings.workers.requeue_after_seconds
    return ctx.locks.document_held(work.doc_id)  # processing, and its worker is alive


def _drop_stale_pending(ctx: WorkerContext, changed: set[str], now: float) -> None:
    """Forget pending marks of settled documents that no live task holds.

    A document queued twice whose second message was lost (a broker restart without persistence)
    is settled by the first task; the scan then finds it unchanged and would never look at its
    leftover `queued` mark, which would show it as queued forever.
    """
    manifest = ctx.runtime.manifest
    stale = [
        doc_id
        for doc_id, work in manifest.pending().items()
        if doc_id not in changed and not _in_flight(ctx, work, now)
    ]
    if stale:
        manifest.drop_pending(stale)


def _enqueue(
    ctx: WorkerContext, to_sync: list[str], to_delete: list[str], unchanged: int
) -> dict[str, Any]:
    manifest = ctx.runtime.manifest
    pending = manifest.pending()
    now = time.time()
    work = [
        (task, doc_id)
        for task, doc_ids in ((sync_document, to_sync), (delete_document, to_delete))
        for doc_id in doc_ids
        if doc_id not in pending or not _in_flight(ctx, pending[doc_id], now)
    ]
    report = {
        "sync": sum(t is sync_document for t, _ in work),
        "delete": sum(t is delete_document for t, _ in work),
        "in_flight": len(to_sync) + len(to_delete) - len(work),
        "unchanged": unchanged,
    }
    if not work:
        return report
    task_ids = {doc_id: uuid.uuid4().hex for _, doc_id in work}
    # Marked before sending: a task that finishes first must find its mark to clear it.
    manifest.mark_queued({d: (_tenant(ctx, d), t) for d, t in task_ids.items()})
    run_id = manifest.record_run(RunSummary(unchanged=unchanged, planned=len(work)))
    syncs = [doc_id for task, doc_id in work if task is sync_document]
    for group in _groups(
        syncs, ctx.settings.workers.worker_batch_docs, ctx.settings.workers.worker_concurrency
    ):
        if len(group) == 1:
            sync_document.apply_async((group[0],), {"run_id": run_id}, task_id=task_ids[group[0]])
        else:
            sync_documents.apply_async((group, [task_ids[d] for d in group]), {"run_id": run_id})
    for task, doc_id in work:
        if task is delete_document:
            task.apply_async((doc_id,), {"run_id": run_id}, task_id=task_ids[doc_id])
    return {**report, "run_id": run_id}


def _groups(doc_ids: list[str], most: int, workers: int) -> list[list[str]]:
    """Documents to sync, in groups of at most `most`, spread evenly over the worker threads.

    A group is embedded in one model call and written in one engine upsert and one write of its
    manifest records; evenly sized groups keep every thread busy (one parses while another
    embeds).
    """
    if not doc_ids:
        return []
    size = max(1, min(most, -(-len(doc_ids) // max(1, workers))))
    return [doc_ids[i : i + size] for i in range(0, len(doc_ids), size)]


# --------------------------------------------------------------------------- documents


@shared_task(name=names.SYNC_DOCUMENT, bind=True, max_retries=None)
def sync_document(self: Task, doc_id: str, run_id: int | None = None) -> dict[str, Any]:
    """Bring one document in line with the bucket (it was new or changed when enqueued)."""
    return _settle(self, doc_id, run_id)


@shared_task(name=names.SYNC_DOCUMENTS)
def sync_documents(
    doc_ids: list[str], task_ids: list[str], run_id: int | None = None
) -> list[dict[str, Any]]:
    """`sync_document` for a group of documents enqueued together (see `_settle_group`)."""
    return _settle_group(doc_ids, task_ids, run_id)


@shared_task(name=names.DELETE_DOCUMENT, bind=True, max_retries=None)
def delete_document(self: Task, doc_id: str, run_id: int | None = None) -> dict[str, Any]:
    """Bring one document in line with the bucket (it was gone when enqueued)."""
    return _settle(self, doc_id, run_id)


def _backoff(ctx: WorkerContext, retries: int) -> float:
    """Full jitter: uniform over [0, base * 2^retries], capped, so retries spread out."""
    s = ctx.settings.workers
    return random.uniform(0, min(s.retry_backoff_max_seconds, s.retry_backoff_seconds * 2**retries))


class _RetryLater(Exception):
    """A transient failure of one document: it is queued again after `countdown` seconds."""

    def __init__(self, exc: Exception, countdown: float) -> None:
        super().__init__(str(exc))
        self.exc, self.countdown = exc, countdown


def _settle(task: Task, doc_id: str, run_id: int | None) -> dict[str, Any]:
    ctx = context()
    s, manifest = ctx.settings.workers, ctx.runtime.manifest
    task_id, tenant = task.request.id or uuid.uuid4().hex, _tenant(ctx, doc_id)
    with ctx.locks.document(doc_id, s.document_lock_ttl_seconds) as held:
        if not held:
            # Another worker has it and re-reads the bucket itself; if the object changed after
            # that read, the next scan sees the new stat data.
            if task.request.retries < s.max_attempts:
                raise task.retry(countdown=_backoff(ctx, task.request.retries))
            return {"doc_id": doc_id, "outcome": "busy"}
        work = manifest.mark_processing(doc_id, tenant, task_id)
        try:
            outcome = _attempt(ctx, doc_id, work, task_id, lambda: _reconcile(ctx, doc_id))
        except _RetryLater as later:
            raise task.retry(exc=later.exc, countdown=later.countdown) from later.exc
        _settled(ctx, doc_id, task_id, run_id, outcome)
    return _result(outcome)


def _settle_group(doc_ids: list[str], task_ids: list[str], run_id: int | None) -> list[dict]:
    """Each document locked, attempted, retried and quarantined exactly as `_settle` does, but
    synced together: one model call, one engine upsert, one write of the manifest records.

    A document tried before (its earlier attempt failed, or its worker died: perhaps with this
    very group) goes on as a single-document task, so only its own attempts count against it and
    a poison document cannot quarantine its group; so does one another worker holds, or one
    whose attempt here fails transiently. If the group's sync fails, each document is synced
    again on its own (a sync is idempotent), so an error is charged to the one that raised it.
    """
    ctx = context()
    s, manifest = ctx.settings.workers, ctx.runtime.manifest
    results: list[dict] = []
    tried = {d for d, work in manifest.pending().items() if work.attempts > 0}
    with contextlib.ExitStack() as locks:
        held: dict[str, str] = {}
        for doc_id, task_id in zip(doc_ids, task_ids, strict=True):
            if doc_id in tried:
                sync_document.apply_async((doc_id,), {"run_id": run_id}, task_id=task_id)
            elif locks.enter_context(ctx.locks.document(doc_id, s.document_lock_ttl_seconds)):
                held[doc_id] = task_id
            else:
                sync_document.apply_async(
                    (doc_id,), {"run_id": run_id}, task_id=task_id, countdown=_backoff(ctx, 0)
                )
        works = {d: manifest.mark_processing(d, _tenant(ctx, d), t) for d, t in held.items()}
        fresh = [d for d in held if works[d].attempts <= s.max_attempts]
        try:
            together = _reconcile_many(ctx, fresh)
        except Exception as exc:
            log.info("group sync failed (%s); syncing its %d documents one by one", exc, len(fresh))
            together = {}
        for doc_id, task_id in held.items():
            try:
                outcome = together.get(doc_id) or _attempt(
                    ctx, doc_id, works[doc_id], task_id, lambda d=doc_id: _reconcile(ctx, d)
                )
            except _RetryLater as later:
                sync_document.apply_async(
                    (doc_id,), {"run_id": run_id}, task_id=task_id, countdown=later.countdown
                )
                continue
            _settled(ctx, doc_id, task_id, run_id, outcome)
            results.append(_result(outcome))
    return results


def _attempt(
    ctx: WorkerContext,
    doc_id: str,
    work: PendingWork,
    task_id: str,
    reconcile: Callable[[], SyncOutcome],
) -> SyncOutcome:
    """One attempt at a locked document; raises `_RetryLater` for a transient error with
    attempts left, quarantines it past `RAG_MAX_ATTEMPTS` or on any other error."""
    s, manifest = ctx.settings.workers, ctx.runtime.manifest
    try:
        if work.attempts > s.max_attempts:
            why = work.error or "its worker stopped while syncing it"
            reason = f"gave up after {s.max_attempts} attempts: {why}"
            return _quarantine(ctx, doc_id, reason, work.attempts)
        return reconcile()
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, BucketUnavailableError) and work.attempts >= s.max_attempts:
            # The bucket, not the document, is failing: leave its chunks and record alone; the
            # first scan that can list the bucket again enqueues it afresh.
            log.error("giving up on %s for now: %s", doc_id, exc)
            return SyncOutcome(doc_id, "failed", error=reason)
        if not is_transient(exc):
            log.exception("quarantining %s after an unexpected error", doc_id)
            return _quarantine(ctx, doc_id, f"internal error: {reason}", work.attempts)
        if work.attempts < s.max_attempts:
            manifest.note_error(doc_id, reason)
            manifest.mark_queued({doc_id: (_tenant(ctx, doc_id), task_id)})
            raise _RetryLater(exc, _backoff(ctx, work.attempts)) from exc
        reason = f"gave up after {work.attempts} attempts: {reason}"
        return _quarantine(ctx, doc_id, reason, work.attempts)


def _settled(
    ctx: WorkerContext, doc_id: str, task_id: str, run_id: int | None, outcome: SyncOutcome
) -> None:
    ctx.runtime.manifest.finish(doc_id, task_id)
    if run_id is not None:
        ctx.runtime.manifest.add_outcome(run_id, outcome.kind, outcome.chunks_embedded)


def _result(outcome: SyncOutcome) -> dict[str, Any]:
    return {
        "doc_id": outcome.doc_id,
        "outcome": outcome.kind,
        "chunks": outcome.chunks,
        "error": outcome.error,
    }


def _reconcile(ctx: WorkerContext, doc_id: str) -> SyncOutcome:
    obj, sidecars = current(ctx.bucket, doc_id)
    syncer = ctx.ingestion.syncer
    if obj is None:
        return syncer.delete(doc_id)
    return syncer.sync([obj], sidecars)[0]


def _reconcile_many(ctx: WorkerContext, doc_ids: list[str]) -> dict[str, SyncOutcome]:
    """`_reconcile` for several documents, those still in the bucket synced in one batch."""
    syncer = ctx.ingestion.syncer
    outcomes: dict[str, SyncOutcome] = {}
    objects, sidecars = [], {}
    for doc_id in doc_ids:
        obj, found = current(ctx.bucket, doc_id)
        if obj is None:
            outcomes[doc_id] = syncer.delete(doc_id)
        else:
            objects.append(obj)
            sidecars.update(found)
    if objects:
        outcomes.update((o.doc_id, o) for o in syncer.sync(objects, sidecars))
    return outcomes


def _quarantine(ctx: WorkerContext, doc_id: str, reason: str, attempts: int) -> SyncOutcome:
    """Failed for good (this version): none of its chunks stay searchable, the reason is kept.

    The syncer's quarantine removes the chunks, tells the listeners and keeps the current stat
    data in the failed record, so the scan leaves the document alone until the object changes; an
    object that is gone meanwhile is simply deleted.
    """
    try:
        obj, sidecars = current(ctx.bucket, doc_id)
    except Exception:
        # The bucket itself is failing: keep no stat data, so a scan that can list the bucket
        # again sees a change and retries the document, rather than quarantining it for good.
        obj, sidecars = ObjectInfo(doc_id, size=-1, mtime=0.0), {}
    if obj is None:
        return ctx.ingestion.syncer.delete(doc_id)
    sidecar = next(iter(sidecars.values()), None)
    return ctx.ingestion.syncer.quarantine(
        obj, sidecar.signature if sidecar else "", reason, attempts
    )
