"""`rag up` sees a changed chunk size and rebuilds on its own while a client searches its API."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis import Redis

from core.embedding import Embedder
from core.runtime import Runtime
from ingest.chunking import Chunker, chunk_hash
from ingest.service import Ingestion, open_bucket
from tests.support.essays import DEFAULT, TOPICS, fill
from tests.support.services import redis_url
from tests.support.settings import make_settings
from workers.redis_server import free_port

pytestmark = pytest.mark.slow
ADMIN_KEY = "operator-key-for-the-reindex-test"


def test_rag_up_rebuilds_on_a_chunk_size_change_while_searches_go_on(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    fill(bucket_dir)
    with Runtime(make_settings(tmp_path), embedder) as rt:
        Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()
        old = {p["chunk_hash"] for _, p in rt.index.scroll(DEFAULT, ["chunk_hash"])}
        old_generation = rt.manifest.get_meta("generation")["id"]
    chunker = Chunker.for_embedder(embedder, 48, 8)
    new = {c.hash for p in bucket_dir.iterdir() for c in chunker.split(p.read_text())}
    shared = old & new  # the short note is one chunk either way
    url = redis_url(11)
    Redis.from_url(url).flushdb()
    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_BUCKET_URL": str(bucket_dir),
        "RAG_REDIS_URL": url,
        "RAG_API_PORT": str(port),
        "RAG_ADMIN_API_KEY": ADMIN_KEY,
        "RAG_SCAN_INTERVAL_SECONDS": "600",
        "RAG_INGEST_BATCH_DOCS": "1",
        "RAG_CHUNK_SIZE": "48",
        "RAG_CHUNK_OVERLAP": "8",
    }
    code = "from core.settings import get_settings; from workers.embedded import run_up; "
    code += "run_up(get_settings())"
    log_path = tmp_path / "up.log"
    log = log_path.open("wb")
    up = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base, headers = f"http://127.0.0.1:{port}", {"X-API-Key": ADMIN_KEY}
    seen: list[str] = []  # "old" / "new" / "mixed" per search, in order
    errors: list[str] = []
    progress: list[dict] = []
    try:
        deadline = time.monotonic() + 240
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            while True:
                assert up.poll() is None and time.monotonic() < deadline, log_path.read_text()
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
            switched_at = None
            i = 0
            while switched_at is None or time.monotonic() < switched_at + 1.5:
                assert up.poll() is None and time.monotonic() < deadline, log_path.read_text()
                body = {"query": f"facts about {TOPICS[i % 3]}", "top_k": 5}
                response = client.post("/v1/search", json=body)
                if response.status_code != 200:
                    errors.append(f"{response.status_code} {response.text}")
                else:
                    hashes = {chunk_hash(r["text"]) for r in response.json()["results"]} - shared
                    seen.append("old" if hashes <= old else "new" if hashes <= new else "mixed")
                index = client.get("/v1/status").json()["index"]
                if index["rebuild"] is not None:
                    progress.append(index["rebuild"])
                if index["generation"] != old_generation and switched_at is None:
                    switched_at = time.monotonic()
                    assert index["chunk_size"] == 48
                i += 1
                time.sleep(0.1)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=90)
        log.close()
    text = log_path.read_text(errors="replace")
    assert errors == []
    assert "mixed" not in seen and seen[0] == "old" and seen[-1] == "new"
    first_new = seen.index("new")
    assert set(seen[first_new:]) == {"new"}, seen
    assert "rebuilding beside it" in text and "switched to index generation" in text
    assert progress and all(p["total"] == 4 for p in progress)
