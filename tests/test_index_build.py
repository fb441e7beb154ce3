"""Building the embedded engine's vector index while searches and writes go on.

The binding's optimiser holds the GIL for the whole build; in-process, a search waited for all of
it (seconds here). The build runs on a copy in a child process: searches are answered throughout.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np

from core.index import EngineQuery
from core.index.edge import EdgeIndex
from core.types import IndexedChunk, TenantScope

DIM = 384
SCOPE = TenantScope("default")


def chunks(rng: np.random.Generator, n: int) -> list[IndexedChunk]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [
        IndexedChunk(str(uuid.uuid4()), v, {"tenant_id": "default", "doc_id": f"d{i}", "text": "x"})
        for i, v in enumerate(vectors)
    ]


def test_searches_and_writes_go_on_while_the_vector_index_builds(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    index = EdgeIndex(tmp_path / "shard", DIM, optimize_min_unindexed=1_000)
    try:
        index.upsert(chunks(rng, 3_000))
        built: list[bool] = []
        builder = threading.Thread(target=lambda: built.append(index.optimize()))
        builder.start()
        late = chunks(rng, 10)
        writer = threading.Thread(target=index.upsert, args=(late,))
        worst, searches = 0.0, 0
        time.sleep(0.05)
        writer.start()
        while builder.is_alive():
            query = EngineQuery(SCOPE, limit=5, dense=rng.standard_normal(DIM).astype(np.float32))
            started = time.perf_counter()
            assert len(index.search(query)) == 5
            worst = max(worst, time.perf_counter() - started)
            searches += 1
            time.sleep(0.05)
        builder.join()
        writer.join()
        status = index.vector_status()
    finally:
        index.close()
    assert built == [True]
    assert searches >= 5, "the build finished before it could be observed"
    assert worst < 1.0, f"a search waited {worst:.2f}s for the build"
    assert status["points"] == 3_010  # the write made during the build is kept
    assert status["indexed_vectors"] >= 3_000
    reopened = EdgeIndex(tmp_path / "shard", DIM, optimize_min_unindexed=1_000)
    assert reopened.count() == 3_010
    reopened.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard", "shard.lock", "shard.v1"]
