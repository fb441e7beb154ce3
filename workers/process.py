"""A `celery -A workers.main worker` process: the command line `rag worker` runs, and a handle on a
child process for the tests and the bench (start, stop gracefully, or kill -9 mid-task)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from core.settings import Settings


def worker_argv(
    settings: Settings, concurrency: int, pool: str = "threads", beat: bool = False
) -> list[str]:
    """Consume both queues; with `beat`, also run the scheduler (exactly one per deployment)."""
    argv = [
        sys.executable, "-m", "celery", "-A", "workers.main", "worker",
        f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO",
        "-Q", f"{settings.workers.celery_scan_queue},{settings.workers.celery_documents_queue}",
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    if beat:
        argv += ["--beat", "--schedule", str(settings.data_dir / "celerybeat-schedule")]
    return argv


class WorkerProcess:
    """A worker in its own session, so `kill()` takes its embedded beat down with it."""

    def __init__(
        self,
        settings: Settings,
        env: dict[str, str],
        log: Path,
        concurrency: int = 2,
        beat: bool = True,
    ) -> None:
        """`env` (RAG_ variables) must give the child the same settings as `settings`."""
        self.env = {**os.environ, **env}
        self.log = log
        self.argv = worker_argv(settings, concurrency, beat=beat)
        self.process: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
            )  # fmt: skip
        return self

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 60) -> int | None:
        """Warm shutdown: running tasks finish, the runtime closes and the shard flushes; tasks
        still running after RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS are left to a restart."""
        if self.process is None:
            return None
        self._signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            code = None
        self._signal(signal.SIGKILL)  # anything left in its session (the beat process)
        self.process = None
        return code

    def kill(self) -> None:
        """kill -9 the worker and its children, mid-whatever."""
        if self.process is not None:
            self._signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)
