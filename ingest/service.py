"""One-shot ingestion of a bucket: scan, then sync what changed. Used by the CLI and the workers."""

from __future__ import annotations

from core.manifest import RunSummary
from core.runtime import Runtime
from core.settings import Settings, get_settings
from ingest.bucket import Bucket, LocalBucket
from ingest.chunking import Chunker
from ingest.documents import DocumentBuilder
from ingest.scan import BucketScanner, Progress, ScanPlan, execute
from ingest.sync import DocumentSyncer


def open_bucket(url: str, settings: Settings | None = None) -> Bucket:
    """`s3://bucket/prefix` (credentials and endpoint from the settings), else a local folder
    path or file:// URL."""
    if url.startswith("s3://"):
        from ingest.s3 import S3Bucket

        return S3Bucket(url, settings or get_settings())
    from pathlib import Path

    return LocalBucket(Path(url.removeprefix("file://")))


class Ingestion:
    """Ties a bucket to the runtime's index, manifest and embedder."""

    def __init__(self, runtime: Runtime, bucket: Bucket) -> None:
        s = runtime.settings
        self.runtime = runtime
        chunker = Chunker(runtime.embedder.tokenizer, s.chunk_size, s.chunk_overlap)
        self.syncer = DocumentSyncer(
            bucket,
            runtime.index,
            runtime.manifest,
            runtime.cached_embedder,
            DocumentBuilder(chunker, s.default_tenant),
            s.max_file_bytes,
            s.default_tenant,
        )
        self.scanner = BucketScanner(bucket, runtime.manifest, runtime.index)

    def plan(self) -> ScanPlan:
        return self.scanner.plan()

    def run(self, plan: ScanPlan | None = None, progress: Progress | None = None) -> RunSummary:
        plan = plan or self.plan()
        summary = execute(plan, self.syncer, self.runtime.settings.ingest_batch_docs, progress)
        self.runtime.manifest.record_run(summary)
        return summary
