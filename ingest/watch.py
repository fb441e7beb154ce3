"""Push hints that a bucket changed: filesystem events for a folder, S3 events through SQS.

A hint only names keys to look at sooner; the periodic scan stays the source of truth, so a lost,
late or duplicated event costs latency, never correctness. Each watcher runs in a daemon thread
and hands batches of keys to a callback (the workers enqueue a scan of just those keys); when it
knows something changed but not what, it asks for a full scan instead.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from core.settings import IngestSettings, Settings
from ingest.bucket import Bucket, LocalBucket, key_of_name

if TYPE_CHECKING:
    from ingest.s3 import S3Bucket

log = logging.getLogger(__name__)

Hint = Callable[[list[str]], None]
Rescan = Callable[[], None]


class Watcher:
    """A thread that calls `hint` with changed keys until `stop()`."""

    def __init__(self, hint: Hint) -> None:
        self._hint = hint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name=type(self).__name__, daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _emit(self, keys: Iterable[str]) -> None:
        batch = sorted(set(keys))
        if batch:
            self._hint(batch)

    def _guarded(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
            except Exception:
                # Hints are optional: log, pause, and keep watching; polling covers the gap.
                log.exception("%s failed; retrying in 5s", type(self).__name__)
                self._stop.wait(5)

    def _run(self) -> None:
        raise NotImplementedError


class FolderWatcher(Watcher):
    """watchfiles (inotify) on a local bucket; hidden files are ignored, as the listing does.

    watchfiles cannot report a path that is not UTF-8: an event on such a file ends the watch,
    and such a directory stops it from starting at all. Either way the watcher asks for a full
    scan (which quarantines the name with its reason) and starts watching again, backing off up
    to `max_backoff_s` while the watch keeps failing, so the bucket is never left unscanned and
    the log gets one line per failure, not a traceback loop. Once the new watch runs (its first
    yield, at the latest after `_READY_S`), one more full scan covers what changed meanwhile.
    """

    _READY_S = 1.0

    def __init__(
        self,
        root: Path,
        hint: Hint,
        rescan: Rescan,
        debounce_ms: int = 500,
        max_backoff_s: float = 60.0,
    ) -> None:
        super().__init__(hint)
        self._rescan = rescan
        self._root = root
        self._debounce_ms = debounce_ms
        self._max_backoff_s = max_backoff_s

    def _run(self) -> None:
        from watchfiles import watch

        backoff, restarted = 0.5, False
        while not self._stop.is_set():
            changes = watch(
                self._root,
                stop_event=self._stop,
                debounce=self._debounce_ms,
                raise_interrupt=False,
                yield_on_timeout=True,  # an empty batch: the watch is up
                rust_timeout=int(self._READY_S * 1000),
            )
            try:
                for batch in changes:
                    if restarted:
                        self._rescan()  # what changed while no watch ran
                        backoff, restarted = 0.5, False
                    keys = (key_of_name(os.path.relpath(path, self._root)) for _, path in batch)
                    self._emit(k for k in keys if not any(p.startswith(".") for p in k.split("/")))
                return
            except RuntimeError as exc:
                if "decode path" not in str(exc):
                    raise
                log.warning("file events stopped (%s); scanning the bucket instead", exc)
                self._rescan()
                restarted = True
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)


def keys_from_s3_event(body: str, bucket: str, prefix: str) -> list[str]:
    """Keys under `prefix` in an S3 event notification (raw, or wrapped by SNS), prefix removed.

    Event keys are URL-encoded with `+` for spaces; anything unparseable yields no keys.
    """
    try:
        event = json.loads(body)
        if isinstance(event, dict) and isinstance(event.get("Message"), str):
            event = json.loads(event["Message"])
        records = event.get("Records", []) if isinstance(event, dict) else []
    except ValueError:
        return []
    keys = []
    for record in records:
        s3 = record.get("s3", {}) if isinstance(record, dict) else {}
        if s3.get("bucket", {}).get("name") != bucket:
            continue
        key = unquote_plus(s3.get("object", {}).get("key", ""))
        if key.startswith(prefix) and len(key) > len(prefix):
            keys.append(key[len(prefix) :])
    return keys


class QueueWatcher(Watcher):
    """Long-polls an SQS queue that receives the bucket's event notifications."""

    def __init__(
        self, queue_url: str, bucket: S3Bucket, ingest: IngestSettings, hint: Hint
    ) -> None:
        from ingest.s3 import aws_client

        super().__init__(hint)
        self._queue_url = queue_url
        self._bucket = bucket
        self._sqs = aws_client("sqs", ingest)

    def _run(self) -> None:
        while not self._stop.is_set():
            reply = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=5
            )
            messages = reply.get("Messages", [])
            keys = [
                key
                for m in messages
                for key in keys_from_s3_event(m["Body"], self._bucket.name, self._bucket.prefix)
            ]
            self._emit(keys)
            if messages:
                self._sqs.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )


def watcher_for(bucket: Bucket, settings: Settings, hint: Hint, rescan: Rescan) -> Watcher | None:
    """The watcher the settings ask for on this bucket, not yet started; None for none.

    `rescan` asks for a full scan, for when a watcher knows that something changed but not what.
    """
    if isinstance(bucket, LocalBucket) and settings.workers.watch_bucket:
        return FolderWatcher(bucket.root, hint, rescan)
    if settings.workers.sqs_queue_url and not isinstance(bucket, LocalBucket):
        from ingest.s3 import S3Bucket  # an S3 bucket is open: the s3 extra is installed

        if isinstance(bucket, S3Bucket):
            return QueueWatcher(settings.workers.sqs_queue_url, bucket, settings.ingest, hint)
    return None
