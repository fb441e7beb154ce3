"""A stop takes bounded time: SIGTERM ends `rag up` and a `celery worker` (what `rag worker`
runs) within RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS, plus the time to close, while a large document
is syncing; the document, left unfinished, is indexed once they run again.

Before, Celery's warm shutdown waited for the running task however long it took: `rag up` did not
stop within 60 s of a SIGTERM while a large document was syncing.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from core.manifest import DocStatus, Manifest
from tests.support.essays import essay
from tests.support.rag_up import RagUp
from tests.support.services import redis_url
from tests.support.workers import WORKER_DB, deployment

pytestmark = pytest.mark.slow

SHUTDOWN_TIMEOUT = 3
# Closing what is not a task (the API, beat, the watcher) and the process's exit, on a loaded
# machine; a large document syncs for much longer than this.
MARGIN = 20
# About 700 KB of distinct sentences, some 1,100 chunks: half a minute to minutes of embedding.
LARGE = essay("glaciers", words=120_000)
# The line a stop past its bound leaves, naming the task it ends.
ABANDONED = re.compile(
    r"exiting without its \d+ running task\(s\).*rag\.sync_documents?\(.*large\.txt"
)
SETTINGS = {
    "RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT),
    "RAG_MAX_FILE_BYTES": str(2 * len(LARGE)),
}


def _write_bucket(bucket: Path) -> None:
    bucket.mkdir(parents=True, exist_ok=True)
    (bucket / "large.txt").write_text(LARGE)


def _syncing_large(manifest_path: Path) -> bool:
    """The large document's task has started: parsing, chunking and embedding it take far longer
    than the shutdown's bound. (Waiting for the small one to be indexed as well, as this once did,
    could wait until the large one was nearly done, since the small one's embedding queued behind
    it: on a quiet machine both finished within a second, and the stop found nothing to abandon.)"""
    return _status(manifest_path, "large.txt") == DocStatus.PROCESSING


def _status(manifest_path: Path, doc_id: str) -> DocStatus | None:
    """The document's status: its task's while one is queued or running, else its record's."""
    manifest = Manifest.at(manifest_path)
    try:
        work = manifest.pending().get(doc_id)
        if work is not None:
            return work.status
        record = manifest.get(doc_id)
        return record.status if record is not None else None
    finally:
        manifest.close()


def _wait(
    check: Callable[[], object], timeout: float, what: str, alive: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert alive() and time.monotonic() < deadline, what
        time.sleep(0.5)


def test_rag_up_stops_within_its_bound_while_a_large_document_syncs(tmp_path: Path) -> None:
    url = redis_url(15)
    _write_bucket(tmp_path / "bucket")
    up = RagUp(tmp_path, url, **SETTINGS).start()
    manifest = up.settings.data_dir / "manifest.sqlite"
    try:
        up.wait_for(lambda: _syncing_large(manifest), 300, "the large document was not picked up")
    finally:
        started = time.monotonic()
        code = up.stop(timeout=600)
        stopped_in = time.monotonic() - started
    log = up.log()
    assert code == 128 + signal.SIGTERM, log[-3000:]
    assert stopped_in < SHUTDOWN_TIMEOUT + MARGIN, f"stopped in {stopped_in:.0f} s\n{log[-3000:]}"
    assert ABANDONED.search(log), log[-3000:]
    assert _status(manifest, "large.txt") == DocStatus.PROCESSING  # left as it was, not failed

    up.log_path.rename(tmp_path / "first-run.log")
    again = RagUp(tmp_path, url, flush_redis=False, **SETTINGS).start()
    try:
        again.wait_for(
            lambda: _status(manifest, "large.txt") == DocStatus.INDEXED,
            900,
            "the interrupted document was not indexed after the restart",
        )
    finally:
        assert again.stop() == 0  # a stop in time is a clean one


def test_a_worker_stops_within_its_bound_while_a_large_document_syncs(
    tmp_path: Path, redis_db: Redis
) -> None:
    bucket = tmp_path / "bucket"
    _write_bucket(bucket)
    dep = deployment(tmp_path, str(bucket), redis_url(WORKER_DB), **SETTINGS)
    manifest = dep.settings.data_dir / "manifest.sqlite"
    worker = dep.worker("first")
    try:
        _wait(
            lambda: _syncing_large(manifest),
            300,
            "the large document was not picked up",
            lambda: worker.alive,
        )
    finally:
        started = time.monotonic()
        code = worker.stop(timeout=600)
        stopped_in = time.monotonic() - started
    log = (tmp_path / "first.log").read_text(errors="replace")
    assert code == 0, log[-3000:]  # a warm shutdown's status
    assert stopped_in < SHUTDOWN_TIMEOUT + MARGIN, f"stopped in {stopped_in:.0f} s\n{log[-3000:]}"
    assert ABANDONED.search(log), log[-3000:]
    assert _status(manifest, "large.txt") == DocStatus.PROCESSING

    worker = dep.worker("second")
    try:
        _wait(
            lambda: _status(manifest, "large.txt") == DocStatus.INDEXED,
            900,
            "the interrupted document was not indexed after the restart",
            lambda: worker.alive,
        )
    finally:
        assert worker.stop() == 0
