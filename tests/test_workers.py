"""Real worker processes (`celery -A workers.main worker --pool=threads --beat`) on a local
bucket, with the real Redis (DB 11), the real model and the real embedded shard.

The embedded shard admits one process, so the test reads the index only while no worker runs:
it waits until a scan that started after the change found nothing to do, stops the worker
(warm shutdown flushes the shard), and then opens the index itself. The expected chunks are built
independently here, with the same chunker, from the files on disk.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from core.embedding import Embedder
from core.runtime import Runtime
from core.types import TenantScope
from ingest.bucket import LocalBucket
from retrieval.hybrid import HybridRetriever, RetrievalConfig
from tests.support.documents import corrupt_pdf, make_docx, make_pdf
from tests.support.services import redis_url
from tests.support.workers import (
    WORKER_DB,
    assert_index_matches,
    builder_for,
    deployment,
    document_text,
    expected_points,
    index_contents,
    run_until_converged,
)
from workers.app import create_app
from workers.tasks.ingestion import sync_document

pytestmark = pytest.mark.slow

# A worker's log line for each run of the sync task the test delivers twice under one id.
SAME_TASK_DONE = "Task rag.sync_document[the-same-task] succeeded"

# ------------------------------------------------------------------ the local-folder scenario


def test_drop_replace_delete_with_real_workers(
    tmp_path: Path, embedder: Embedder, redis_db: Redis
) -> None:
    bucket_dir = tmp_path / "bucket"
    (bucket_dir / "tenants" / "acme").mkdir(parents=True)
    # Nothing is queued again while its first message waits (a loaded machine takes longer than
    # the suite's 5 s): the run that synced the change is then the last one.
    dep = deployment(
        tmp_path, str(bucket_dir), redis_url(WORKER_DB), RAG_REQUEUE_AFTER_SECONDS="600"
    )
    keys = [f"notes/doc {n:02d}.txt" for n in range(47)]
    for n, key in enumerate(keys):
        (bucket_dir / key).parent.mkdir(exist_ok=True)
        (bucket_dir / key).write_text(document_text(n))
    (bucket_dir / "tenants/acme/report.pdf").write_bytes(make_pdf(["Acme quarterly quokka900."]))
    (bucket_dir / "tenants/acme/memo.docx").write_bytes(make_docx(["Memo about quokka901."]))
    (bucket_dir / "tenants/acme/résumé été.md").write_text("# CV\n\nExperience with quokka902.")
    bad = {
        "bad/corrupt.pdf": (corrupt_pdf(), "corrupt PDF"),
        "bad/empty.txt": (b"", "empty document"),
        "bad/huge.txt": (b"x" * 60_001, "over the 60000-byte limit"),
        "bad/latin1.txt": ("café crème".encode("latin-1"), "not valid UTF-8"),
    }
    (bucket_dir / "bad").mkdir()
    for key, (data, _) in bad.items():
        (bucket_dir / key).write_bytes(data)

    status = run_until_converged(dep, "w1")
    assert status.counts["indexed"] == 50 and status.counts["failed"] == 4
    assert {r.doc_id: r.error for r in status.failed}.keys() == bad.keys()
    for record in status.failed:
        assert bad[record.doc_id][1] in record.error, record

    settings = dep.settings
    builder = builder_for(embedder, settings)
    bucket = LocalBucket(bucket_dir)
    good = [o for o in bucket.list() if not o.key.startswith("bad/")]
    with Runtime(settings, embedder) as rt:
        assert_index_matches(rt, expected_points(bucket, good, builder))
        before = index_contents(rt)
        retriever = HybridRetriever(
            rt.index, embedder, RetrievalConfig.from_settings(rt.settings.retrieval)
        )
        for n, key in enumerate(keys):
            hits = retriever.retrieve(TenantScope("default"), f"quokka{n}", 1, "bm25")
            assert hits[0].payload["doc_id"] == key
        acme = retriever.retrieve(TenantScope("acme"), "quokka902", 1, "hybrid")
        assert acme[0].payload["doc_id"] == "tenants/acme/résumé été.md"

    # Replace 5 (one paragraph each), delete 5; deliver one sync task twice, concurrently.
    replaced, deleted = keys[:5], keys[5:10]
    for key in replaced:
        n = keys.index(key)
        (bucket_dir / key).write_text(document_text(n, edit=3))
    for key in deleted:
        (bucket_dir / key).unlink()
    create_app(settings)
    for _ in range(2):
        sync_document.apply_async((replaced[0],), task_id="the-same-task")

    # Both deliveries run, one after the other (the document's lock): wait for the second too,
    # or the worker may be stopped with it still queued behind the first.
    status = run_until_converged(dep, "w2", also=lambda log: log.count(SAME_TASK_DONE) == 2)
    assert status.counts["indexed"] == 45 and status.counts["deleted"] == 5
    run = status.last_run  # the duplicated task may settle replaced[0] before the scan runs
    assert run is not None and run.deleted == 5 and run.modified in (4, 5), run

    good = [o for o in bucket.list() if not o.key.startswith("bad/")]
    expected = expected_points(bucket, good, builder)
    with Runtime(settings, embedder) as rt:
        assert_index_matches(rt, expected)
        after = index_contents(rt)
    for key in keys[10:]:
        assert after[key] == before[key]  # untouched documents: not a point changed
    for key in replaced:
        old, new = before[key][0], after[key][0]
        assert old != new and old & new  # the edited paragraph's chunks changed, not all


def test_a_run_counts_the_chunks_its_documents_embedded(
    tmp_path: Path, embedder: Embedder, redis_db: Redis
) -> None:
    """Worker threads share the model, so each task reports its own documents' cache misses: a
    run of new documents counts all their chunks, the run after a one-paragraph edit only the
    chunks that edit made."""
    bucket_dir = tmp_path / "bucket"
    bucket_dir.mkdir()
    # Groups sized for one thread put both new documents in one task (one batch write); scans
    # re-send nothing still queued, so the last run is the one that synced the change.
    dep = deployment(
        tmp_path,
        str(bucket_dir),
        redis_url(WORKER_DB),
        RAG_WORKER_CONCURRENCY="1",
        RAG_REQUEUE_AFTER_SECONDS="600",
    )
    keys = ["notes/first.txt", "notes/second.txt"]
    (bucket_dir / "notes").mkdir()
    for n, key in enumerate(keys):
        (bucket_dir / key).write_text(document_text(n))
    bucket, builder = LocalBucket(bucket_dir), builder_for(embedder, dep.settings)
    before = expected_points(bucket, bucket.list(), builder)

    run = run_until_converged(dep, "w1").last_run
    assert run is not None and run.added == 2, run
    assert run.chunks_embedded == sum(len(ids) for ids, _ in before.values())

    (bucket_dir / keys[0]).write_text(document_text(0, edit=3))
    after = expected_points(bucket, bucket.list(), builder)
    new_chunks = after[keys[0]][0] - before[keys[0]][0]
    assert 0 < len(new_chunks) < len(after[keys[0]][0])

    run = run_until_converged(dep, "w2").last_run
    assert run is not None and run.modified == 1, run
    assert run.chunks_embedded == len(new_chunks)
