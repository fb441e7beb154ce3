"""Index upkeep: the embedded engine's vector index, and rebuilds when the configuration changed.

A Qdrant server optimises in the background by itself, so there the optimise task finds nothing to
do. The embedded engine does it only when asked; it builds in a child process (see
`EdgeIndex.optimize`), so searches go on, while writes wait for it: which is why it runs on a
timer between ingestion batches rather than after every document.

A rebuild (`ingest.reindex`) starts on its own when `rag up` starts or the optimise timer fires
and the configured generation fingerprint differs from the served one; it logs that it started,
each step's documents done of the total (also in status), and the switch.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from celery import Task, shared_task

from ingest.reindex import RebuildProgress, needs_rebuild
from workers import names
from workers.context import context

log = logging.getLogger(__name__)
_OPTIMIZE_LOCK = "optimize"
_REBUILD_LOCK = "rebuild"


@shared_task(name=names.OPTIMIZE_INDEX)
def optimize_index() -> dict[str, Any]:
    ctx = context()
    if not ctx.locks.task_held(_REBUILD_LOCK) and needs_rebuild(ctx.runtime):
        rebuild_index.delay()
    with ctx.locks.task(_OPTIMIZE_LOCK, ctx.settings.workers.document_lock_ttl_seconds) as held:
        if not held:
            return {"skipped": "another optimisation is running"}
        started = time.perf_counter()
        optimized = ctx.ingestion.build_vector_index()
        return {"optimized": optimized, "seconds": round(time.perf_counter() - started, 3)}


@shared_task(name=names.REBUILD_INDEX, bind=True, max_retries=None)
def rebuild_index(self: Task) -> dict[str, Any]:
    """Rebuild towards the configured fingerprint until switched; a no-op when they match.

    A lock still held by a killed process lapses within its TTL, so a busy lock means: try again
    then, not never.
    """
    ctx = context()
    if not needs_rebuild(ctx.runtime):
        return {"rebuilt": False}
    ttl = ctx.settings.workers.document_lock_ttl_seconds
    with ctx.locks.task(_REBUILD_LOCK, ttl) as held:
        if not held:
            raise self.retry(countdown=ttl)
        rebuild = ctx.platform.rebuild()
        p = rebuild.progress
        log.info(
            "index generation %s is configured (%s changed) but %s is served: rebuilding beside "
            "it; searches use %s until the switch",
            p.target,
            ", ".join(p.changed),
            p.served,
            p.served,
        )
        try:
            rebuild.run(ctx.settings.ingest.batch_docs, on_step=_log_step)
        finally:
            rebuild.close()
        return {"rebuilt": True, **asdict(p)}


def _log_step(p: RebuildProgress) -> None:
    if not p.switched:
        log.info(
            "rebuilding generation %s: %d/%d documents, %d chunks embedded, %d reused",
            p.target,
            p.done,
            p.total,
            p.embedded,
            p.reused,
        )
