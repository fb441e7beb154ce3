"""A Redis lock with expiry, so two workers never sync the same document at once.

`SET key token NX PX ttl` takes it; only the holder's token can renew or release it (a Lua
compare-and-act). While held, a daemon thread renews it every third of the TTL, so a long sync
keeps it, while a worker killed mid-task lets it lapse within one TTL and the document frees up.
"""

from __future__ import annotations

import contextlib
import threading
import uuid

from redis import Redis
from redis.exceptions import RedisError

_PREFIX = "rag:lock:"
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"  # noqa: E501
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"  # noqa: E501


def lock_key(name: str) -> str:
    return _PREFIX + name


def is_locked(redis: Redis, name: str) -> bool:
    return bool(redis.exists(lock_key(name)))


class RedisLock:
    def __init__(self, redis: Redis, name: str, ttl_seconds: float) -> None:
        self._redis = redis
        self.key = lock_key(name)
        self._ttl_ms = max(1, int(ttl_seconds * 1000))
        self._token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False  # set when a renewal found the lock expired or taken over

    def acquire(self) -> bool:
        if not self._redis.set(self.key, self._token, nx=True, px=self._ttl_ms):
            return False
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
