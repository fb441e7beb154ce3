"""Hostile input (issue 7): over 200 malformed or adversarial files around good documents, through
a real worker process.

Each hostile document ends quarantined with a reason in the status (or, for the few a lenient
parser may partly recover, indexed), every good document is indexed and searchable, the worker
process that did it all is the same one at the end, and its peak memory stays bounded although the
corpus holds zip bombs expanding to gigabytes and three 1 GB (sparse) files.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from redis import Redis

from core.embedding import Embedder
from core.manifest import DocStatus
from core.runtime import Runtime
from core.types import TenantScope
from retrieval.hybrid import HybridRetriever, RetrievalConfig
from tests.support.hostile import GOOD, write_hostile_corpus
from tests.support.services import redis_url
from tests.support.workers import WORKER_DB, deployment, wait_converged

pytestmark = pytest.mark.slow

PEAK_RSS_LIMIT_MB = 3_000  # the model and libraries take about 1.2 GB of it


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_hostile_corpus_is_quarantined_without_losing_a_worker(
    tmp_path: Path, embedder: Embedder, redis_db: Redis
) -> None:
    bucket = tmp_path / "bucket"
    expectations = write_hostile_corpus(bucket)
    hostile = {k: e for k, e in expectations.items() if k not in GOOD}
    assert len(hostile) >= 200

    dep = deployment(
        tmp_path, str(bucket), redis_url(WORKER_DB), RAG_MAX_FILE_BYTES=str(50 * 2**20)
    )
    started = time.time()
    worker = dep.worker("hostile")
    try:
        pid = worker.process.pid
        wait_converged(dep, started, worker, timeout=900)
        assert worker.alive and worker.process.pid == pid, "the worker died or was replaced"
        peak = _peak_rss_mb(pid)
    finally:
        worker.stop()
    print(f"peak worker RSS {peak:.0f} MB over {len(expectations)} documents")
    assert peak < PEAK_RSS_LIMIT_MB

    manifest = dep.manifest()
    try:
        records = manifest.all()
    finally:
        manifest.close()
    assert set(records) == set(expectations)  # symlinks, the FIFO and sidecars are not documents
    wrong = []
    for key, expect in expectations.items():
        record = records[key]
        if record.status == DocStatus.FAILED:
            assert record.error, key
        if expect.outcome == "either":
            ok = record.status in (DocStatus.INDEXED, DocStatus.FAILED)
        elif expect.outcome == "indexed":
            ok = record.status == DocStatus.INDEXED
        else:
            ok = record.status == DocStatus.FAILED and expect.reason.lower() in record.error.lower()
        if not ok:
            wrong.append((key, expect, record.status, record.error))
    assert not wrong, "\n".join(map(str, wrong))
    must_fail = sum(e.outcome == "failed" for e in expectations.values())
    failed = sum(r.status == DocStatus.FAILED for r in records.values())
    print(f"{failed} quarantined ({must_fail} had to be), {len(records) - failed} indexed")
    assert must_fail >= 150 and failed >= must_fail

    with Runtime(dep.settings, embedder) as rt:
        retriever = HybridRetriever(
            rt.index, embedder, RetrievalConfig.from_settings(rt.settings.retrieval)
        )
        for n, key in enumerate(GOOD):
            hits = retriever.retrieve(TenantScope("default"), f"gannet{n}", 1, "bm25")
            assert hits and hits[0].payload["doc_id"] == key
        assert rt.index.count(TenantScope("globex")) == 0  # no sidecar moved anything
