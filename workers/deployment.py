"""Which deployment a process serves, so that deployments sharing a Redis database leave each
other's work alone.

A deployment is one bucket and data dir (or the name RAG_WORKERS_DEPLOYMENT gives it). Two of
them on one Redis database consume each other's tasks from the same queues: a sync of one's
bucket would run against the other's index. So:

- Every task the Celery app sends names the deployment that sent it (`DeploymentCelery`, the
  message header `rag_deployment`), and a worker runs only its own deployment's tasks
  (`DeploymentTask`, one check before any task starts). Another deployment's task is handed, unrun,
  to that deployment's own queue (`Deployment.queue`, which only its workers consume, besides the
  shared ones) and acknowledged; the first of each foreign deployment is logged. So nothing is
  lost for its owner, even while it is away, and nothing loops: a task that arrives on a
  deployment's own queue is never handed on again. Dropping it instead would leave it to the
  owner's next scan, but the owner can lose every round: Redis gives each message to the consumer
  that has waited longest, and the owner's had just taken the scan that sent it (a test saw one
  document's sync taken by the other deployment 33 times in a row, for three minutes). Rejecting
  it back to the shared queue would pass it between the two, or spin on one while its owner is
  away. A task that names no deployment (an older release, a plain Celery client) has no owner
  to go to: it is dropped.
- Their locks are kept apart (`core.locks` names each lock within its deployment).
- `rag up` and `rag worker` keep a heartbeat key naming their deployment while they run, and warn
  at start-up of another deployment's: the two still cost each other (every task of either may
  take a detour), so each wants a database of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore
from kombu.utils.url import maybe_sanitize_url
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from core.locks import redis_client
from core.settings import Settings

log = logging.getLogger(__name__)

HEADER = "rag_deployment"
_QUEUE_PREFIX = "rag.deployment."
_HEARTBEAT_PREFIX = "rag:heartbeat:"


@dataclass(frozen=True)
class Deployment:
    """A deployment's identity (`id`) and, for people reading logs, where it lives."""

    id: str
    bucket: str
    data_dir: str

    @classmethod
    def of(cls, settings: Settings) -> Deployment:
        """Named by RAG_WORKERS_DEPLOYMENT, else by its bucket and where its state lives, made
        absolute so every process of it agrees wherever it was started: the data dir, or the
        state database (RAG_STATE_URL, its password left out) that hosts each with a data dir
        of their own share."""
        bucket = settings.ingest.bucket_url
        if not bucket.startswith("s3://"):
            bucket = str(Path(bucket.removeprefix("file://")).expanduser().resolve())
        data_dir = str(settings.data_dir.expanduser().resolve())
        state = data_dir
        if settings.state.url is not None:
            url = make_url(settings.state.url.get_secret_value())
            state = url.render_as_string(hide_password=True)
        derived = hashlib.sha256(f"{bucket}\n{state}".encode()).hexdigest()[:16]
        return cls(settings.workers.deployment or derived, bucket, data_dir)

    @classmethod
    def from_header(cls, value: Any) -> Deployment | None:
        """The sender a message names, or None when it names none or is malformed."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(str(value["id"]), str(value["bucket"]), str(value["data_dir"]))
        except KeyError:
            return None

    @property
    def queue(self) -> str:
        """The queue only this deployment's workers consume: its tasks another's worker received,
        and the tasks sent to it by name (`rag eval`'s)."""
        return f"{_QUEUE_PREFIX}{self.id}"

    def header(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.id} (bucket {self.bucket}, data dir {self.data_dir})"


class DeploymentTask(Task):
    """The base of every task: runs what the worker's own deployment sent, hands the rest on."""

    def before_start(self, task_id: str, args: tuple, kwargs: dict) -> None:
        if self.request.is_eager:  # `Task.apply` in this process: no message, no sender
            return
        own: Deployment = self.app.deployment
        sender = Deployment.from_header((self.request.headers or {}).get(HEADER))
        if sender is not None and sender.id == own.id:
            return
        arrived_on = (self.request.delivery_info or {}).get("routing_key") or ""
        handed = False
        if sender is not None and not arrived_on.startswith(_QUEUE_PREFIX):
            self.app.send_task(
                self.name,
                args,
                kwargs,
                task_id=task_id,
                queue=sender.queue,
                headers={HEADER: sender.header()},
                expires=self.request.expires,
                retries=self.request.retries,
            )
            handed = True
        _refusals.note(self.name, sender, own, handed, maybe_sanitize_url(self.app.conf.broker_url))
        raise Ignore()  # acknowledged, not run, no result stored


class DeploymentCelery(Celery):
    """The platform's Celery app: every task it sends names `deployment` (set by
    `workers.app.create_app`), and its tasks are `DeploymentTask`s."""

    deployment: Deployment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, task_cls=DeploymentTask, **kwargs)

    def send_task(self, name: str, *args: Any, **options: Any) -> Any:
        """`Task.apply_async`, `delay`, retries and beat all send through here. A message for
        another deployment names it itself (a task handed on to its owner; `rag eval`'s, sent to
        the deployment serving its data dir)."""
        options["headers"] = {HEADER: self.deployment.header(), **(options.get("headers") or {})}
        return super().send_task(name, *args, **options)


class _Refusals:
    """Foreign deployments whose tasks this process did not run: each is logged once."""

    def __init__(self) -> None:
        self._seen: set[str | None] = set()
        self._guard = threading.Lock()

    def note(
        self, task: str, sender: Deployment | None, own: Deployment, handed: bool, broker: str
    ) -> None:
        key = sender.id if sender is not None else None
        with self._guard:
            if key in self._seen:
                return
            self._seen.add(key)
        if sender is None:
            what = (
                "dropped it, as it names no deployment (an older release, or a plain Celery "
                "client sent it)"
            )
        elif handed:
            what = f"handed it unrun to that deployment's own queue {sender.queue}"
        else:
            what = "dropped it: it came on a deployment's own queue, where it does not belong"
        log.warning(
            "refused %s sent by %s: this worker serves deployment %s, and %s. Logged once per "
            "deployment. Two deployments share the Redis database %s: give each its own "
            "(RAG_REDIS_URL).",
            task,
            f"deployment {sender.describe()}" if sender is not None else "no deployment",
            own.describe(),
            what,
            broker,
        )


_refusals = _Refusals()


@dataclass(frozen=True)
class Beat:
    """One running process's heartbeat, as another process reads it."""

    deployment: Deployment
    host: str
    pid: int

    def describe(self) -> str:
        return f"{self.deployment.describe()}, pid {self.pid} on {self.host}"


def heartbeats(redis: Redis) -> list[Beat]:
    """Every live heartbeat on this database, of any deployment."""
    beats = []
    keys = list(redis.scan_iter(match=f"{_HEARTBEAT_PREFIX}*", count=1000))
    for raw in redis.mget(keys) if keys else []:
        try:
            value = json.loads(raw or b"null")
            deployment = Deployment.from_header(value)
            if deployment is not None:
                beats.append(Beat(deployment, str(value["host"]), int(value["pid"])))
        except (ValueError, TypeError, KeyError):
            continue  # a key that lapsed between SCAN and MGET, or not ours
    return beats


def serving(settings: Settings, beats: list[Beat]) -> Deployment:
    """The deployment whose workers serve this data dir on this host, as their heartbeats say:
    a `rag up` started with other settings (another RAG_BUCKET_URL, say) is still the one that
    holds this data dir's index. Without one, this process's own deployment."""
    own = Deployment.of(settings)
    host = socket.gethostname()
    here = sorted(
        {b.deployment for b in beats if b.host == host and b.deployment.data_dir == own.data_dir},
        key=lambda d: d.id != own.id,  # its own first, should there be several
    )
    return here[0] if here else own


class Heartbeat:
    """A key naming this process's deployment, renewed every RAG_WORKERS_HEARTBEAT_INTERVAL_SECONDS
    while the process runs and lapsing three intervals after it dies; `start` also warns of
    other deployments' heartbeats on the same database."""

    def __init__(self, settings: Settings) -> None:
        self.deployment = Deployment.of(settings)
        self._url = settings.redis_url
        self._interval = settings.workers.heartbeat_interval_seconds
        self._key = f"{_HEARTBEAT_PREFIX}{uuid.uuid4().hex}"
        self._value = json.dumps(
            {**self.deployment.header(), "host": socket.gethostname(), "pid": os.getpid()}
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._redis: Redis | None = None

    def start(self) -> Heartbeat:
        self._redis = redis_client(self._url)
        try:
            self._warn_of_others()
            self._publish()
        except RedisError as exc:  # the worker says so itself when it cannot reach its broker
            log.debug("no heartbeat yet: %s", exc)
        self._thread = threading.Thread(target=self._renew, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._redis is not None:
            with contextlib.suppress(RedisError):  # else it lapses by itself
                self._redis.delete(self._key)
            self._redis.close()
            self._redis = None

    def _publish(self) -> None:
        assert self._redis is not None
        self._redis.set(self._key, self._value, px=int(self._interval * 3000))

    def _renew(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._publish()
            except RedisError:
                continue  # Redis may come back before the key lapses

    def _warn_of_others(self) -> None:
        assert self._redis is not None
        others = [b for b in heartbeats(self._redis) if b.deployment.id != self.deployment.id]
        if others:
            log.warning(
                "another deployment uses this Redis database (%s): %s. Each hands the other's "
                "tasks on to their owner unrun, a detour for every task that reaches the wrong "
                "worker; give each deployment its own database "
                "(RAG_REDIS_URL=redis://HOST:PORT/N). This is deployment %s.",
                maybe_sanitize_url(self._url),
                "; ".join(sorted({b.describe() for b in others})),
                self.deployment.describe(),
            )
