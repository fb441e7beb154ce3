"""The evaluation's own index: a BEIR corpus written as files into a bucket, synced like any other.

Where it lives, and why: every dataset gets a dedicated folder (`RAG_EVAL_DATA_DIR/<dataset>/`,
by default `data_dir/eval/<dataset>/`) holding its bucket and its own embedded shard, manifest and
embedding cache, with the documents under the `RAG_EVAL_TENANT` tenant. Not the served index,
because

- the embedded shard takes an exclusive lock, so a nightly job could not open the index the API
  holds, and evaluation documents must never show up in a served tenant's results;
- ingestion goes through the real path (bucket -> `ingest.service.Ingestion` -> chunking,
  embedding, the engine's BM25), so the numbers measure what users get.

It is kept between runs rather than thrown away: the files are rewritten only when their content
changed, so the next run's scan finds them unchanged and a nightly costs a scan, not a re-embed of
the corpus; the scan's reconciliation still makes the index equal to the dataset (documents that
left the dataset are deleted). Delete the folder to start from nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from core.embedding import Embedder
from core.manifest import DocStatus, RunSummary
from core.runtime import Runtime
from core.settings import SERVER_ONLY, Settings
from core.types import TenantScope
from eval.beir import BeirDoc
from ingest.bucket import LocalBucket
from ingest.service import Ingestion

_SUFFIX = ".txt"


def eval_root(settings: Settings) -> Path:
    return settings.eval.data_dir or settings.data_dir / "eval"


@dataclass(frozen=True)
class EvalWorkspace:
    root: Path
    scope: TenantScope
    settings: Settings  # the platform's settings, pointed at this workspace's own data dir

    @classmethod
    def for_dataset(cls, settings: Settings, dataset_name: str) -> EvalWorkspace:
        root = eval_root(settings) / (re.sub(r"[^A-Za-z0-9_.-]", "-", dataset_name) or "dataset")
        own = settings.updated(
            data_dir=root / "data",
            bucket_url=str(root / "bucket"),
            index={"mode": "edge", **dict.fromkeys(SERVER_ONLY)},
        )
        return cls(root, TenantScope(settings.eval.tenant), own)

    @property
    def bucket_root(self) -> Path:
        return self.root / "bucket"

    @property
    def _prefix(self) -> str:
        return f"tenants/{self.scope.tenant_id}/"

    def key(self, doc_id: str) -> str:
        """The bucket key of a BEIR document; ids are percent-quoted so any id is a safe name."""
        name = quote(doc_id, safe="")
        if name.startswith("."):  # the bucket skips hidden files
            name = "%2E" + name[1:]
        return f"{self._prefix}{name}{_SUFFIX}"

    def doc_id(self, key: str) -> str | None:
        """The BEIR id behind an indexed document's key; None for anything else."""
        if not (key.startswith(self._prefix) and key.endswith(_SUFFIX)):
            return None
        return unquote(key[len(self._prefix) : -len(_SUFFIX)])

    def write_corpus(self, corpus: dict[str, BeirDoc]) -> int:
        """Mirror the corpus into the bucket; returns how many files were (re)written."""
        folder = self.bucket_root / self._prefix
        folder.mkdir(parents=True, exist_ok=True)
        wanted = {self.key(d).removeprefix(self._prefix): doc for d, doc in corpus.items()}
        for stale in set(p.name for p in folder.iterdir()) - set(wanted):
            (folder / stale).unlink()
        written = 0
        for name, doc in wanted.items():
            path, data = folder / name, doc.content.encode("utf-8")
            if not path.exists() or path.read_bytes() != data:
                path.write_bytes(data)
                written += 1
        return written

    def open_runtime(self, embedder: Embedder | None = None) -> Runtime:
        return Runtime(self.settings, embedder)

    @property
    def bucket(self) -> LocalBucket:
        return LocalBucket(self.bucket_root)

    def ingest(
        self, ingestion: Ingestion, progress: Callable[[str], None] | None = None
    ) -> RunSummary:
        """Sync the bucket through `ingestion` (of `bucket`, on the workspace's runtime) into the
        workspace's index; `progress` gets a line per ~5% of it."""
        plan = ingestion.plan()
        total, done = plan.total_work, 0
        step = max(1, total // 20)

        def advance(n: int) -> None:
            nonlocal done
            before, done = done, done + n
            if progress is not None and (done // step > before // step or done == total):
                progress(f"ingest: {done}/{total} documents")

        return ingestion.run(plan, advance)

    def failed_documents(self, runtime: Runtime) -> dict[str, str]:
        """BEIR id -> why it failed to ingest, for the documents the index could not take."""
        records = runtime.manifest.current(self.scope.tenant_id).values()
        return {
            self.doc_id(r.doc_id) or r.doc_id: r.error
            for r in records
            if r.status == DocStatus.FAILED
        }
