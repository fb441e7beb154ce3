"""An exclusive, crash-released lock on the embedded shard's directory.

qdrant-edge assumes one owner per shard; a second process opening it can damage a running shard.
`flock` is released by the kernel when the owner dies (even by kill -9), so a stale lock never
blocks a restart, and the holder's identity is written beside it for the error message.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from pathlib import Path


class ShardLockedError(RuntimeError):
    """Another process owns the shard; `holder` names it (pid, command line, since when)."""

    def __init__(self, message: str, holder: str = "another process") -> None:
        super().__init__(message)
        self.holder = holder


class ShardLock:
    def __init__(self, shard_path: Path) -> None:
        self.path = shard_path.parent / f"{shard_path.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder(fd)
            os.close(fd)
            raise ShardLockedError(
                f"the index at {self.path.parent} is in use by {holder}; only one process may "
                "open an embedded shard. Stop it, or query it through its API, or run with "
                "RAG_INDEX_MODE=server against a Qdrant server.",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        holder = {"pid": os.getpid(), "cmd": " ".join(sys.argv)[:200], "since": time.time()}
        os.write(fd, json.dumps(holder).encode())
        self._fd = fd

    @classmethod
    def check_free(cls, shard_path: Path) -> None:
        """ShardLockedError now if another process holds the shard: a check before a slow
        start-up (loading the model), not a reservation; opening the index takes the lock."""
        probe = cls(shard_path)
        probe.acquire()
        probe.release()

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @staticmethod
    def _read_holder(fd: int) -> str:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["since"]))
            return f"pid {info['pid']} ({info['cmd']}) since {since}"
        except (ValueError, KeyError, OSError):
            return "another process"
