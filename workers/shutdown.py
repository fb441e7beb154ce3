"""A worker's stop takes bounded time: running tasks get RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS to
finish, then the process ends without them.

Celery's warm shutdown waits for every running task however long it takes (a large document can
embed for minutes), and a threads pool cannot cancel one: even the interpreter's exit joins its
threads. So once a stop begins, a deadline watches it. If the pool has not stopped when the
deadline passes, the process names the tasks it leaves and exits at once, ending them as a kill -9
would; the workers are built to survive that: tasks are idempotent and acknowledged late, their
document locks lapse within their TTL, and the next scan enqueues what they held again. Until
then the platform stays open under the running tasks: it is closed only after the pool has
stopped (`StopDeadline.met`), so no task ever writes to a closed index or manifest.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import NoReturn

from celery.worker import state

log = logging.getLogger(__name__)


class StopDeadline:
    """The time a stopping worker pool has left; `start` it when the stop begins."""

    def __init__(self, timeout_seconds: float, exit_code: int) -> None:
        """`exit_code`: the process's status should the deadline pass (what the stop would
        have exited with)."""
        self.timeout_seconds = timeout_seconds
        self.exit_code = exit_code
        self._met = threading.Event()
        self._decided = threading.Lock()  # met, or passed: whichever comes first holds

    def start(self) -> StopDeadline:
        threading.Thread(target=self._watch, name="stop-deadline", daemon=True).start()
        return self

    def met(self) -> None:
        """The pool stopped in time: the process goes on to close the platform and exit."""
        with self._decided:
            self._met.set()

    def _watch(self) -> None:
        if self._met.wait(self.timeout_seconds):
            return
        with self._decided:
            if not self._met.is_set():
                self._exit_without_running_tasks()

    def _exit_without_running_tasks(self) -> NoReturn:
        running = sorted(f"{r.name}{r.argsrepr}" for r in list(state.active_requests))
        log.warning(
            "the worker pool did not stop within %g s (RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS): "
            "exiting without its %d running task(s), whose documents a restart syncs again: %s",
            self.timeout_seconds,
            len(running),
            "; ".join(running) or "none",
        )
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exit_code)
