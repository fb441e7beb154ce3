"""A real `rag up` process for tests and bench scripts that probe a running system: the API, the
worker pool, beat and the folder watcher in one child process, over a scratch data dir.

The operator key is known to the caller, so it mints tenant keys through the API exactly as an
operator would. The manifest can be read while the process runs (SQLite WAL); the index only
after `stop()`, since the embedded shard admits one process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from core.manifest import Manifest
from core.settings import Settings
from tests.support.workers import send_as
from workers.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
OPERATOR_KEY = "operator-key-for-tests-0123456789abcdef"
TWO_TENANTS = {  # a small bucket: two documents of acme, one of globex
    "tenants/acme/fox.txt": "The quick brown fox jumps over the lazy dog near the river bank.",
    "tenants/acme/solar.txt": "Quarterly revenue grew by twelve percent thanks to solar panels.",
    "tenants/globex/whale.txt": "Call me Ishmael. The whale surfaced beside the ship at dawn.",
}
_LAUNCH = "from cli.main import main; main()"  # `rag up`, from this checkout


class RagUp:
    """`rag up` on `bucket` (default `tmp/bucket`); `env` adds or overrides RAG_ settings.

    `flush_redis` empties the Redis database first, for callers that own it (the tests' own
    databases); a bench pointed at someone's Redis leaves it as it is.
    """

    def __init__(
        self,
        tmp: Path,
        redis_url: str,
        bucket: Path | None = None,
        flush_redis: bool = True,
        **env: str,
    ) -> None:
        self.tmp = tmp
        self.bucket = bucket or tmp / "bucket"
        self.port = free_port()
        self.redis_url = redis_url
        self.flush_redis = flush_redis
        self.env = {
            "RAG_DATA_DIR": str(tmp / "data"),
            "RAG_BUCKET_URL": str(self.bucket),
            "RAG_REDIS_URL": redis_url,
            "RAG_API_PORT": str(self.port),
            "RAG_ADMIN_API_KEY": OPERATOR_KEY,
            "RAG_SCAN_INTERVAL_SECONDS": "2",
            "RAG_REQUEUE_AFTER_SECONDS": "5",
            "RAG_DOCUMENT_LOCK_TTL_SECONDS": "3",
            "RAG_RETRY_BACKOFF_SECONDS": "0.5",
            "RAG_MAX_FILE_BYTES": "60000",
            **env,
        }
        self.settings = Settings(**{k.removeprefix("RAG_").lower(): v for k, v in self.env.items()})
        self.log_path = tmp / "up.log"
        self.process: subprocess.Popen | None = None
        self.client = httpx.Client(base_url=self.url, timeout=30)
        self.keys: dict[str, str] = {}  # tenant -> a reader key, minted by `start(files)`

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self,
        files: Mapping[str, str] | None = None,
        tenants: tuple[str, ...] = ("acme", "globex"),
        timeout: float = 240,
        umask: int | None = None,
    ) -> RagUp:
        """Start and wait until the pool runs and the API answers; `umask` for the child.

        With `files` (bucket key -> text), write them first, mint a reader key of each of
        `tenants` (`auth`) and wait until all of them are indexed.
        """
        for name, text in (files or {}).items():
            path = self.bucket / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if self.flush_redis:
            with Redis.from_url(self.redis_url) as redis:
                redis.flushdb()
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, "up"],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        )
        log.close()
        threads = self.settings.workers.worker_concurrency
        started = f"worker pool ({threads} threads), beat and watcher started"
        self.wait_for(lambda: started in self.log(), timeout, "rag up did not start")
        self.wait_for(self._healthy, 60, "the API did not answer")
        if files:
            self.keys = {tenant: self.mint(tenant) for tenant in tenants}
            self.wait_for(lambda: self._indexed() >= len(files), timeout, "not all indexed")
        return self

    def _healthy(self) -> bool:
        try:
            return self.client.get("/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def _indexed(self) -> int:
        """Documents indexed in the tenants of `keys`, as `/v1/status` tells each of them."""
        return sum(
            self.client.get("/v1/status", headers=self.auth(tenant))
            .json()["documents"]
            .get("indexed", 0)
            for tenant in self.keys
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, check: Callable[[], Any], timeout: float, what: str) -> Any:
        """Poll `check` until it returns something truthy; fail with the log's tail otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if not self.alive or time.monotonic() > deadline:
                state = "running" if self.alive else "dead"
                raise AssertionError(f"{what} ({state})\n{self.log()[-5000:]}")
            time.sleep(0.5)

    def headers(self, key: str = OPERATOR_KEY) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def auth(self, tenant: str) -> dict[str, str]:
        """Headers with the reader key `start(files)` minted for `tenant`."""
        return self.headers(self.keys[tenant])

    def mint(self, tenant: str, role: str = "reader") -> str:
        """A key of `tenant`, minted through the API with the operator key."""
        reply = self.client.post(
            "/v1/keys", json={"tenant": tenant, "role": role}, headers=self.headers()
        )
        assert reply.status_code == 201, reply.text
        return reply.json()["key"]

    def request_scan(self) -> None:
        """Send the process a full scan, as its own deployment would."""
        queue = self.settings.workers.celery_scan_queue
        send_as(self.settings, self.redis_url, "rag.scan_bucket", (), queue)

    def manifest(self) -> Manifest:
        return Manifest.open(self.settings)

    def records(self) -> dict:
        manifest = self.manifest()
        try:
            return manifest.current()
        finally:
            manifest.close()

    def stop(self, timeout: float = 90) -> int | None:
        """SIGTERM and wait: the pool drains, the API closes the runtime and flushes the shard."""
        self.client.close()
        if self.process is None:
            return None
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        except ProcessLookupError:
            code = self.process.wait()
        self.process = None
        return code
