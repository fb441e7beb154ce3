"""Every task's name, and which run on the scan queue: the tasks' decorators, the app's routes,
beat's schedule and whoever sends a task by name (`rag eval`'s hand-off) read them here. The
queues' own names are settings (`RAG_CELERY_SCAN_QUEUE`, `RAG_CELERY_DOCUMENTS_QUEUE`), and a
deployment's own queue is `workers.deployment.Deployment.queue`."""

from __future__ import annotations

SCAN_BUCKET = "rag.scan_bucket"
SCAN_KEYS = "rag.scan_keys"
SYNC_DOCUMENT = "rag.sync_document"
SYNC_DOCUMENTS = "rag.sync_documents"
DELETE_DOCUMENT = "rag.delete_document"
OPTIMIZE_INDEX = "rag.index.optimize"
REBUILD_INDEX = "rag.index.rebuild"
EVAL_TENANTS = "rag.eval.tenants"
EVAL_TENANT = "rag.eval.tenant"
EVAL_NIGHTLY = "rag.eval.nightly"

# Whole-bucket and whole-index work, kept off the documents queue, so that a document's sync
# never waits behind a scan or an evaluation; the other tasks take the documents queue.
ON_SCAN_QUEUE = (
    SCAN_BUCKET,
    SCAN_KEYS,
    OPTIMIZE_INDEX,
    REBUILD_INDEX,
    EVAL_NIGHTLY,
    EVAL_TENANTS,
    EVAL_TENANT,
)
