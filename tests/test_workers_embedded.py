"""`rag up`: the API, a worker pool, beat and the folder watcher in one process, with a Redis it
starts itself because none answers at the configured URL."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from core.embedding import Embedder
from core.manifest import DocStatus
from core.runtime import Runtime
from tests.support.workers import deployment
from workers.redis_server import free_port

pytestmark = pytest.mark.slow


def test_rag_up_runs_api_workers_beat_and_watcher_in_one_process(
    tmp_path: Path, embedder: Embedder
) -> None:
    """`rag up` with no Redis at the configured URL starts its own; a file dropped into the
    folder is indexed through the filesystem watcher's hint long before the next periodic scan;
    the API answers from the same process; SIGTERM stops it cleanly (status 0) and releases the
    shard. It names the address it serves, the port it was given (uvicorn named 8000 whatever
    port it served, issue 24 finding 8)."""
    bucket_dir = tmp_path / "bucket"
    bucket_dir.mkdir()
    port = free_port()
    dep = deployment(
        tmp_path,
        str(bucket_dir),
        f"redis://127.0.0.1:{free_port()}/3",  # nothing listens there
        RAG_SCAN_INTERVAL_SECONDS="600",
        RAG_API_PORT=str(port),
    )
    log = (tmp_path / "up.log").open("wb")
    up = dep.start_up(log)
    try:
        deadline = time.monotonic() + 180
        while "worker pool (2 threads), beat and watcher started" not in (
            tmp_path / "up.log"
        ).read_text(errors="replace"):
            assert up.poll() is None and time.monotonic() < deadline, "rag up did not start"
            time.sleep(0.5)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}
        (bucket_dir / "dropped.txt").write_text("Dropped while running: quokka404.")
        manifest = dep.manifest()
        while (r := manifest.get("dropped.txt")) is None or r.status != DocStatus.INDEXED:
            assert up.poll() is None and time.monotonic() < deadline, "not indexed by the hint"
            time.sleep(0.5)
        manifest.close()
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(timeout=60)
        log.close()
    text = (tmp_path / "up.log").read_text(errors="replace")
    assert code == 0, text[-3000:]
    url = f"http://127.0.0.1:{port}"
    assert f"serving the API at {url} (docs: {url}/docs)" in text and ":8000" not in text
    assert "started its own at redis://127.0.0.1:" in text and "rag.scan_keys" in text
    with Runtime(dep.settings, embedder) as rt:  # the shard lock was released
        assert rt.index.document_ids() == {"dropped.txt": 1}
