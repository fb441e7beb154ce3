"""A real `rag up` process on loopback for tests and bench scripts: the API, the worker pool, beat
and the watcher in one process over a scratch data dir and bucket, with keys minted beforehand.

`RagUp.start` waits until the API answers and every file of the bucket is indexed, so whoever
uses it probes a platform that is fully up, as an outside client would find it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from api.auth import create_key
from core.settings import Settings
from workers.redis_server import free_port

ADMIN_KEY = "probe-operator-key-for-tests-only"
TWO_TENANTS = {  # a small bucket: two documents of acme, one of globex
    "tenants/acme/fox.txt": "The quick brown fox jumps over the lazy dog near the river bank.",
    "tenants/acme/solar.txt": "Quarterly revenue grew by twelve percent thanks to solar panels.",
    "tenants/globex/whale.txt": "Call me Ishmael. The whale surfaced beside the ship at dawn.",
}
_REPO = Path(__file__).resolve().parent.parent.parent


@dataclass
class RagUp:
    """One `rag up` process; `keys` maps "<tenant>:<role>" to a key of that tenant and role."""

    tmp: Path
    redis_url: str
    env: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def bucket(self) -> Path:
        return self.tmp / "bucket"

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    @property
    def log_path(self) -> Path:
        return self.tmp / "up.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def auth(self, tenant: str, role: str = "reader") -> dict[str, str]:
        return {"X-API-Key": self.keys[f"{tenant}:{role}"]}

    def start(
        self,
        files: dict[str, str],
        tenants: tuple[str, ...] = ("acme", "globex"),
        timeout: float = 240,
        **settings: str,
    ) -> RagUp:
        """Write the bucket, mint keys, start `rag up` and wait until `files` are all indexed."""
        for name, text in files.items():
            path = self.bucket / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.port = free_port()
        self.env = {
            "RAG_DATA_DIR": str(self.data_dir),
            "RAG_BUCKET_URL": str(self.bucket),
            "RAG_REDIS_URL": self.redis_url,
            "RAG_API_PORT": str(self.port),
            "RAG_ADMIN_API_KEY": ADMIN_KEY,
            "RAG_SCAN_INTERVAL_SECONDS": "2",
            "RAG_GRAPH_ENABLED": "false",
            **settings,
        }
        keyed = Settings(data_dir=self.data_dir)
        self.keys = {f"{t}:{r}": create_key(keyed, t, r) for t in tenants for r in ("reader",)}
        rag = shutil.which("rag")
        main = "from cli.main import main; main()"
        argv = [rag, "up"] if rag else [sys.executable, "-c", main, "up"]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=_REPO,
            )
        self._wait_indexed(len(files), tenants, time.monotonic() + timeout)
        return self

    def _wait_indexed(self, expected: int, tenants: tuple[str, ...], deadline: float) -> None:
        while True:
            assert self.process is not None and self.process.poll() is None, self.log()[-3000:]
            assert time.monotonic() < deadline, f"rag up not ready:\n{self.log()[-3000:]}"
            try:
                indexed = sum(
                    httpx.get(f"{self.url}/v1/status", headers=self.auth(t), timeout=5)
                    .json()["documents"]
                    .get("indexed", 0)
                    for t in tenants
                )
            except (httpx.HTTPError, KeyError, ValueError):
                indexed = -1
            if indexed >= expected:
                return
            time.sleep(0.5)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)
