"""Building the embedded engine's vector index while searches and writes go on.

The binding's optimiser holds the GIL for the whole build; in-process, a search waited for all of
it (seconds here). The build runs on a copy in a child process: searches are answered throughout.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from core.embedding import Embedder
from core.index import open_index
from core.serving import Generation, ServedIndex, Serving
from core.types import IndexedChunk, TenantScope
from tests.support.engine import edge_index, engine_query
from tests.support.settings import make_settings

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
    index = edge_index(tmp_path / "shard", DIM, optimize_min_unindexed=1_000)
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
            query = engine_query(SCOPE, limit=5, dense=rng.standard_normal(DIM).astype(np.float32))
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
    reopened = edge_index(tmp_path / "shard", DIM, optimize_min_unindexed=1_000)
    assert reopened.count() == 3_010
    reopened.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard", "shard.lock", "shard.v1"]


def test_a_query_runs_on_the_generation_that_embedded_it_across_a_switch(
    tmp_path: Path, embedder: Embedder
) -> None:
    """Embedded by the old generation, searched after the switch: it still goes to the old one;
    a pin left by a request that never searched is dropped once its generation is retired."""
    rng = np.random.default_rng(3)
    indexes, ids = [], []
    for name in ("a", "b", "c"):
        index = edge_index(tmp_path / name, DIM)
        index.upsert(chunks(rng, 1))
        indexes.append(index)
        ids.append([next(index.scroll(None, ()))[0]])
    serving = Serving(Generation(indexes[0], embedder))
    served = ServedIndex(serving)
    query = engine_query(SCOPE, limit=1, dense=rng.standard_normal(DIM).astype(np.float32))
    serving.pin()  # what ServedEmbedder.embed_query does, here with generation a
    serving.switch(Generation(indexes[1], embedder), lambda: None)
    assert [h.id for h in served.search(query)] == ids[0]  # pinned: a, though b is served
    assert [h.id for h in served.search(query)] == ids[1]  # not pinned: the served one
    serving.pin()  # b, and this request never searches
    retired = threading.Event()
    serving.switch(Generation(indexes[2], embedder), retired.set, grace_seconds=0.2)
    assert retired.wait(10)
    assert [h.id for h in served.search(query)] == ids[2]  # b is closed: the served one
    served.close()


def test_the_engine_runs_on_the_configured_threads(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        engine_search_threads=3,
        engine_indexing_threads=2,
        index_optimize_min_unindexed=200,
    )
    index = open_index(settings, DIM)
    try:
        index.upsert(chunks(np.random.default_rng(3), 300))
        assert index.optimize()  # the child process's build opens the copy with them too
        assert index.vector_status()["indexed_vectors"] >= 300
    finally:
        index.close()
    config = json.loads((settings.shard_path / "edge_config.json").read_text())
    assert config["max_search_threads"] == 3
    assert config["hnsw_config"]["max_indexing_threads"] == 2
