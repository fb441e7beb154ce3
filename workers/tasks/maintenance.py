"""Index upkeep: building the embedded engine's vector index over what the workers wrote.

A Qdrant server optimises in the background by itself, so there the task finds nothing to do. The
embedded engine does it only when asked, in the calling thread and holding the GIL: under `rag up`
the API pauses while it runs (about 2 ms a new point on two cores, so seconds per few thousand),
which is why it runs on a timer between ingestion batches rather than after every document.
"""

from __future__ import annotations

import time
from typing import Any

from workers.app import app
from workers.context import context
from workers.locks import RedisLock

_OPTIMIZE_LOCK = "optimize"


@app.task(name="rag.index.optimize")
def optimize_index() -> dict[str, Any]:
    ctx = context()
    with RedisLock(ctx.redis, _OPTIMIZE_LOCK, ctx.settings.document_lock_ttl_seconds) as held:
        if not held:
            return {"skipped": "another optimisation is running"}
        started = time.perf_counter()
        optimized = ctx.ingestion.build_vector_index()
        return {"optimized": optimized, "seconds": round(time.perf_counter() - started, 3)}
