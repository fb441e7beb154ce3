"""A scan reads each document's state, not its chunk ids: its memory does not grow with the
corpus's chunk count.

Before, every scan (every 30 s, and every watcher hint) read every record whole, chunk ids and
metadata included: some 38 MB at 100k documents of 10 chunks, only to compare their count with
the index's.
"""

from __future__ import annotations

import tracemalloc
import uuid
from pathlib import Path

from core.manifest import DocStatus, DocumentRecord
from core.runtime import Runtime
from ingest.bucket import LocalBucket
from ingest.scan import BucketScanner, DeleteGuard

DOCUMENTS = 1_000


def _peak_bytes_of_a_scan(runtime: Runtime, bucket: LocalBucket, chunks_per_document: int) -> int:
    """Every object recorded as indexed with `chunks_per_document` chunks: the scan's peak."""
    runtime.manifest.put(
        *(
            DocumentRecord(
                obj.key,
                "default",
                bucket.uri(obj.key),
                DocStatus.INDEXED,
                size=obj.size,
                mtime=obj.mtime,
                chunk_ids=[str(uuid.uuid4()) for _ in range(chunks_per_document)],
            )
            for obj in bucket.list()
        )
    )
    guard = DeleteGuard(0.5, 10, "default")
    scanner = BucketScanner(bucket, runtime.manifest, runtime.index, guard)
    tracemalloc.start()
    try:
        plan = scanner.plan()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Nothing is indexed, so each record's chunk count differs from the index's: all to sync.
    assert len(plan.to_sync) == DOCUMENTS
    return peak


def test_a_scans_memory_does_not_grow_with_the_chunks_per_document(
    runtime: Runtime, bucket_dir: Path
) -> None:
    for n in range(DOCUMENTS):
        (bucket_dir / f"{n}.txt").write_text(f"note {n}")
    bucket = LocalBucket(bucket_dir)
    few = _peak_bytes_of_a_scan(runtime, bucket, 1)
    many = _peak_bytes_of_a_scan(runtime, bucket, 200)  # some 17 MB of chunk ids, if read
    assert many < 1.5 * few, (few, many)
