"""Redis locks with expiry, so two processes never work on the same document or task at once.

`SET key token NX PX ttl` takes one; only the holder's token can renew or release it (a Lua
compare-and-act). While held, a daemon thread renews it every third of the TTL, so a long sync
keeps it, while a worker killed mid-task lets it lapse within one TTL and the document frees up.

A deployment's locks (`Locks`) are its own: `rag:lock:<deployment>:doc:<doc id>` and
`rag:lock:<deployment>:task:<name>`, so another deployment on the same Redis database neither
waits for them nor skips its scan for them (`workers.deployment`). Documents and tasks lock in
separate namespaces: a document id is any bucket key, so a bucket object named `scan` must not
contend with the scan. Every process that changes a document (a worker's task, `rag up`'s pool,
the API's delete) takes its document lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501
_POLL_SECONDS = 0.05


def redis_client(url: str) -> Redis:
    return Redis.from_url(
        url, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30
    )


@dataclass(frozen=True)
class Locks:
    """The locks of the deployment `deployment` (its id) in `redis`."""

    redis: Redis
    deployment: str

    def key(self, kind: str, name: str) -> str:
        """`kind` is "doc" or "task"; a deployment id holds no colon (`workers.deployment`)."""
        return f"rag:lock:{self.deployment}:{kind}:{name}"

    def document(self, doc_id: str, ttl_seconds: float) -> RedisLock:
        return RedisLock(self.redis, self.key("doc", doc_id), ttl_seconds)

    def task(self, name: str, ttl_seconds: float) -> RedisLock:
        return RedisLock(self.redis, self.key("task", name), ttl_seconds)

    def document_held(self, doc_id: str) -> bool:
        return bool(self.redis.exists(self.key("doc", doc_id)))

    def task_held(self, name: str) -> bool:
        return bool(self.redis.exists(self.key("task", name)))


class RedisLock:
    """One lock on the Redis key `key`; build it with `Locks`."""

    def __init__(self, redis: Redis, key: str, ttl_seconds: float) -> None:
        self._redis = redis
        self.key = key
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False  # set when a renewal found the lock expired or taken over

    def acquire(self, wait_seconds: float = 0.0) -> bool:
        """Take the lock, trying for up to `wait_seconds` while another holder has it."""
        deadline = time.monotonic() + wait_seconds
        while not self._redis.set(self.key, self._token, nx=True, px=self._ttl_ms):
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        self._renewer = threading.Thread(target=self._renew, name=f"renew {self.key}", daemon=True)
        self._renewer.start()
        return True

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
            with contextlib.suppress(RedisError):  # if Redis is away, the lock lapses by itself
                self._redis.eval(_RELEASE, 1, self.key, self._token)

    def _renew(self) -> None:
        while not self._stop.wait(self._ttl_ms / 3000):
            try:
                if not self._redis.eval(_RENEW, 1, self.key, self._token, self._ttl_ms):
                    self.lost = True
                    return
            except RedisError:
                continue  # Redis may come back before the TTL runs out

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
