"""Model calls on a thread of their own, because of how torch parallelises on the CPU.

Torch's OpenMP runtime keeps one team of worker threads per thread that calls into it, and an
idle team spins for a while before it sleeps. Calls arriving from a rotating pool (anyio's, a
Celery pool's) start a new team on each thread and leave the previous ones spinning against the
one at work: on two cores a query took 15 ms to embed from anyio's pool against 8 ms from one
long-lived thread. Each kind of call (query embedding, document embedding, reranking) gets one
such thread, so queries never wait behind a document batch and every call reuses a warm team.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


class InferenceThread:
    """Runs calls one at a time on a single long-lived thread, started on first use.

    Started again in a forked child (a prefork worker), where the parent's thread does not exist.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._guard = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        return self._pool().submit(fn, *args, **kwargs).result()

    def _pool(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None or self._pid != os.getpid():
                self._executor = ThreadPoolExecutor(1, thread_name_prefix=self._name)
                self._pid = os.getpid()
            return self._executor
