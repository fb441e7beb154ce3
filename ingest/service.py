"""One-shot ingestion of a bucket: scan, then sync what changed. Used by the CLI and the workers."""

from __future__ import annotations

from collections.abc import Sequence

from core.extras import missing_extra
from core.generation import VECTOR_INDEX_META
from core.listeners import DocumentListener
from core.manifest import RunSummary
from core.runtime import Runtime
from core.settings import IngestSettings
from ingest.bucket import Bucket, LocalBucket
from ingest.documents import DocumentBuilder
from ingest.reindex import reconcile_generation
from ingest.scan import BucketScanner, DeleteGuard, Progress, ScanPlan, execute
from ingest.sync import DocumentSyncer


def open_bucket(url: str, ingest: IngestSettings) -> Bucket:
    """`s3://bucket/prefix` (credentials and endpoint from the settings), else a local folder
    path or file:// URL."""
    if url.startswith("s3://"):
        try:
            from ingest.s3 import S3Bucket
        except ModuleNotFoundError as exc:
            raise missing_extra("s3", f"the bucket {url}", exc) from exc

        return S3Bucket(url, ingest)
    from pathlib import Path

    return LocalBucket(Path(url.removeprefix("file://")))


class Ingestion:
    """Ties a bucket to the runtime's index, manifest and embedder, and to `listeners`."""

    def __init__(
        self, runtime: Runtime, bucket: Bucket, listeners: Sequence[DocumentListener] = ()
    ) -> None:
        """`listeners` are told of every document change: the graph's updater, when the
        composition root (`serving.platform.Platform.ingestion_of`) enables the graph."""
        s = runtime.settings
        self.runtime = runtime
        reconcile_generation(runtime)  # a new index is stamped with the configured fingerprint
        self.syncer = DocumentSyncer(
            bucket,
            runtime.index,
            runtime.manifest,
            runtime.cached_embedder,
            DocumentBuilder.served(s, runtime.embedder),
            s.ingest.max_file_bytes,
            s.default_tenant,
            listeners,
        )
        guard = DeleteGuard(
            s.ingest.scan_hold_deletes_share, s.ingest.scan_hold_deletes_min, s.default_tenant
        )
        self.scanner = BucketScanner(bucket, runtime.manifest, runtime.index, guard)

    def build_vector_index(self) -> bool:
        """Build HNSW over what was written (edge; a server does it itself), noting the counts in
        the manifest for `rag status`; True if anything was built."""
        built = self.runtime.index.optimize()
        self.runtime.manifest.set_meta(VECTOR_INDEX_META, self.runtime.index.vector_status())
        return built

    def plan(self) -> ScanPlan:
        return self.scanner.plan()

    def run(self, plan: ScanPlan | None = None, progress: Progress | None = None) -> RunSummary:
        plan = plan or self.plan()
        summary = execute(plan, self.syncer, self.runtime.settings.ingest.batch_docs, progress)
        self.runtime.manifest.record_run(summary)
        return summary
