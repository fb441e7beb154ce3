"""`rag up`: one process holding the index, serving the API, running a worker pool and beat.

The embedded shard admits one process, so everything that touches it lives here: a Celery worker
with a threads pool (started in-process, sharing the API's platform: one model, one open index),
beat as a thread, and the bucket watcher. Redis is the configured one if it answers, else one this
process starts. The pool starts after the API's platform is up and stops before it closes, as a
lifespan of a router added to the API app.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from celery.app.trace import setup_worker_optimizations
from celery.beat import EmbeddedService
from fastapi import APIRouter, FastAPI

from core.datadir import secure_data_dir
from core.settings import Settings
from ingest.watch import Watcher, watcher_for
from serving.platform import Platform
from workers import context
from workers.app import create_app
from workers.context import quiet_progress_bars
from workers.deployment import Heartbeat
from workers.redis_server import ensure_redis
from workers.shutdown import StopDeadline
from workers.tasks.ingestion import scan_bucket, scan_keys
from workers.tasks.maintenance import rebuild_index

log = logging.getLogger(__name__)


class EmbeddedPool:
    """The worker pool, beat and the watcher, inside the process that owns `platform`."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._worker: Any = None
        self._thread: threading.Thread | None = None
        self._beat: Any = None
        self._watcher: Watcher | None = None
        self._heartbeat: Heartbeat | None = None

    def start(self) -> None:
        s = self.platform.settings
        app = create_app(s)
        self._heartbeat = Heartbeat(s).start()  # warns now of another deployment's workers
        own_queue = app.deployment.queue  # its tasks that another deployment's worker received
        ctx = context.install(self.platform)
        hostname = f"rag-up@{socket.gethostname()}"
        # What `celery worker` does before it starts its WorkController, and a bare one does not:
        # a pool thread finds its task through Celery's current app, which a new thread does not
        # inherit, so without it the threads ran the fallback app's copy of each task (no broker
        # configured: a retry went to amqp://localhost and was lost; and no DeploymentTask:
        # another deployment's tasks ran here).
        setup_worker_optimizations(app, hostname)
        self._worker = app.WorkController(
            pool_cls="threads",
            concurrency=s.workers.worker_concurrency,
            hostname=hostname,
            queues=[s.workers.celery_scan_queue, s.workers.celery_documents_queue, own_queue],
            without_gossip=True,
            without_mingle=True,
        )
        self._thread = threading.Thread(target=self._worker.start, name="worker", daemon=True)
        self._thread.start()
        self._beat = EmbeddedService(
            app, thread=True, schedule_filename=str(s.data_dir / "celerybeat-schedule")
        )
        self._beat.start()
        self._watcher = watcher_for(
            ctx.bucket, s, lambda keys: scan_keys.delay(keys), lambda: scan_bucket.delay()
        )
        if self._watcher is not None:
            self._watcher.start()
        scan_bucket.delay()  # now, not one interval from now
        rebuild_index.delay()  # if the configuration changed since the index was built
        log.info("worker pool (%d threads), beat and watcher started", s.workers.worker_concurrency)

    def stop(self) -> None:
        """Stop taking work, let running tasks finish, and leave the platform to its owner.

        Running tasks get RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS; past it the process exits without
        them (`StopDeadline`), with the status a stop by SIGTERM has, before its owner closes
        the platform under them.
        """
        deadline = StopDeadline(
            self.platform.settings.workers.shutdown_timeout_seconds, 128 + signal.SIGTERM
        ).start()
        if self._watcher is not None:
            self._watcher.stop()
        if self._beat is not None:
            self._beat.stop()
        if self._worker is not None:
            self._worker.stop(in_sighandler=False)
        if self._thread is not None:
            self._thread.join()
        deadline.met()
        if self._heartbeat is not None:
            self._heartbeat.stop()
        context.close()

    def router(self) -> APIRouter:
        """A router whose lifespan runs the pool inside the API's (which owns the platform)."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await anyio.to_thread.run_sync(self.start)
            try:
                yield
            finally:
                await anyio.to_thread.run_sync(self.stop)

        return APIRouter(lifespan=lifespan)


def run_up(settings: Settings, with_api: bool = True) -> None:
    """Run until SIGINT or SIGTERM: the API (unless `with_api` is off), workers, beat, watcher.

    A stop asked for by either signal that completes returns (exit status 0, what a supervisor
    or `make run` takes for a clean stop); one whose running tasks outlast
    RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS exits 143 from `StopDeadline`, and a failure while
    stopping raises as any failure does.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_progress_bars()
    # Both signals raise through Python, so the `finally` below stops Redis: before the API runs,
    # and after it, since uvicorn re-raises the signal once it has shut down.
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    try:
        _run_up(settings, with_api)
    except KeyboardInterrupt:
        if not _stop_requested.is_set():
            raise
        log.info("rag up stopped")


def _run_up(settings: Settings, with_api: bool) -> None:
    from api.server import bind_api_socket, check_can_start, run_api

    # A busy port or a shard held by another process fail now, before anything slow or started.
    check_can_start(settings)
    sock = bind_api_socket(settings.api.host, settings.api.port) if with_api else None
    secure_data_dir(settings.data_dir)  # before Redis, should this process start one there
    redis = ensure_redis(settings.redis_url, settings.data_dir / "redis")
    try:
        if redis.started_here:
            log.warning(
                "no Redis answers at %s, so rag up started its own at %s (%s, data in %s); "
                "it stops when rag up stops. Set RAG_REDIS_URL to use a Redis of your own.",
                settings.redis_url,
                redis.url,
                redis.describe(),
                settings.data_dir / "redis",
            )
        settings = settings.updated(redis_url=redis.url)
        platform = Platform.open(settings)
        pool = EmbeddedPool(platform)
        if sock is not None:
            from api.app import create_app

            api = create_app(platform, extra_routers=[pool.router()])  # the API closes it
            _raise_if_interrupted()
            run_api(api, sock, settings.api)
        else:
            with platform:
                _raise_if_interrupted()
                pool.start()
                _wait_for_signal()
                pool.stop()
    finally:
        if sock is not None:
            sock.close()
        redis.stop()


_stop_requested = threading.Event()


def _request_stop(*_: object) -> None:
    """SIGINT (and SIGTERM) as Python's own handler does SIGINT, remembered: an exception raised
    while a destructor runs (a Redis client's, say) is only printed, so the start-up checks again
    before serving, and `run_up` tells the stop asked for from any other KeyboardInterrupt."""
    _stop_requested.set()
    raise KeyboardInterrupt


def _raise_if_interrupted() -> None:
    if _stop_requested.is_set():
        raise KeyboardInterrupt


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
