"""The worker process's one platform (model, index, manifest, graph, bucket, ingestion) and Redis.

A worker process builds it once when it starts (`worker_process_init` for prefork and solo pools,
`worker_init` for the threads pool, whose tasks run in the starting process) and closes it on
shutdown, releasing the embedded shard's lock; a stop that outlasts
RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS ends the process without its running tasks instead
(`workers.shutdown`). `rag up` installs the platform it already holds, so its API and its worker
pool share one model, one open index and one graph store.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from celery import signals
from redis import Redis

from core.locks import Locks, redis_client
from core.runtime import Runtime
from core.settings import Settings, get_settings
from ingest.bucket import Bucket
from ingest.service import Ingestion
from serving.platform import Platform
from workers.deployment import Deployment, Heartbeat
from workers.shutdown import StopDeadline


@dataclass
class WorkerContext:
    platform: Platform
    owned: bool  # closed on worker shutdown; `rag up` closes its own platform itself

    @property
    def runtime(self) -> Runtime:
        return self.platform.runtime

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    @property
    def bucket(self) -> Bucket:
        return self.platform.bucket

    @property
    def ingestion(self) -> Ingestion:
        return self.platform.ingestion

    @cached_property
    def redis(self) -> Redis:
        return redis_client(self.settings.redis_url)

    @cached_property
    def locks(self) -> Locks:
        return Locks(self.redis, Deployment.of(self.settings).id)


_context: WorkerContext | None = None
_guard = threading.Lock()


def install(platform: Platform) -> WorkerContext:
    """Use a platform the caller owns and closes (the `rag up` process)."""
    global _context
    with _guard:
        _context = WorkerContext(platform, owned=False)
        return _context


def context() -> WorkerContext:
    """The process's context, built from the environment's settings on first use."""
    global _context
    with _guard:
        if _context is None:
            ctx = WorkerContext(Platform.open(get_settings()), owned=True)
            ctx.ingestion  # noqa: B018 - load the model and open the index before any task
            _context = ctx
        return _context


def close() -> None:
    global _context
    with _guard:
        ctx, _context = _context, None
    if ctx is not None and ctx.owned:
        ctx.platform.close()


@signals.worker_process_init.connect
def _on_process_init(**_: object) -> None:
    context()


@signals.worker_init.connect
def _on_worker_init(sender: object = None, **_: object) -> None:
    if "thread" in str(getattr(sender, "pool_cls", "")).lower():
        context()


@signals.after_setup_logger.connect
def quiet_progress_bars(**_: object) -> None:
    """sentence-transformers draws a progress bar per encode at INFO: noise in a worker log."""
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)


@signals.celeryd_after_setup.connect
def _consume_own_queue(instance: Any = None, **_: object) -> None:
    """A `celery worker` also consumes its deployment's own queue, whatever its -Q says: its
    tasks that another deployment's worker received come back there (`workers.deployment`)."""
    instance.app.amqp.queues.select_add(instance.app.deployment.queue)


_heartbeat: Heartbeat | None = None


@signals.worker_ready.connect
def _on_worker_ready(**_: object) -> None:
    """A `celery worker` (`rag worker`) beats for its deployment and warns of others on its
    database; `rag up`'s pool does the same itself (`workers.embedded`)."""
    global _heartbeat
    _heartbeat = Heartbeat(get_settings()).start()


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: object) -> None:
    global _heartbeat
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None


_stop_deadline: StopDeadline | None = None


@signals.worker_shutting_down.connect
def _on_shutting_down(exitcode: int = 0, **_: object) -> None:
    """A `celery worker` (`rag worker`) told to stop waits for its running tasks only so long."""
    global _stop_deadline
    if _stop_deadline is None:
        timeout = get_settings().workers.shutdown_timeout_seconds
        _stop_deadline = StopDeadline(timeout, exitcode).start()


@signals.worker_process_shutdown.connect
@signals.worker_shutdown.connect
def _on_shutdown(**_: object) -> None:
    if _stop_deadline is not None:
        _stop_deadline.met()
    close()
