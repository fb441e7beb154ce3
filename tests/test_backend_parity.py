"""The two index backends rank the same corpus the same way, and refuse what they cannot apply.

200 SciFact abstracts, embedded once with the real model, go into the embedded engine and into
qdrant-client's local mode (the stand-in for a Qdrant server); the same SciFact queries must
bring back the same top 10 in every leg. One tenant only: local mode keeps BM25 statistics over
all tenants' points (see `ServerIndex`), so with two tenants their BM25 scores would differ by
design. Both use the one tokenization local mode scores; a Qdrant server takes the stemmer and
stopwords as the embedded engine does, and local mode refuses them at start-up.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from core.embedding import Embedder
from core.index import ChunkIndex
from core.index.schema import TextIndexConfig
from core.index.server import ServerIndex
from core.settings import Settings
from core.types import IndexedChunk, TenantScope, chunk_point_id
from retrieval.hybrid import HybridRetriever, Mode, RetrievalConfig
from tests.support.engine import (
    PLAIN_WORDS,
    SHIPPED,
    bm25_params,
    edge_index,
    engine_query,
    local_server_index,
)

SCIFACT = Path("/work/shared/data/scifact")
DOCS, QUERIES, TOP = 200, 25, 10
SCOPE = TenantScope("parity")

pytestmark = pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact is not on this machine")


def _lines(name: str, count: int) -> list[dict]:
    with (SCIFACT / name).open() as f:
        return [json.loads(line) for line in itertools.islice(f, count)]


@pytest.fixture(scope="module")
def backends(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Iterator[dict[str, ChunkIndex]]:
    docs = _lines("corpus.jsonl", DOCS)
    texts = [f"{d['title']}\n\n{d['text']}" for d in docs]
    vectors = embedder.embed_documents(texts)
    chunks = [
        IndexedChunk(
            chunk_point_id(SCOPE.tenant_id, d["_id"], text),
            vector,
            {"tenant_id": SCOPE.tenant_id, "doc_id": d["_id"], "text": text},
        )
        for d, text, vector in zip(docs, texts, vectors, strict=True)
    ]
    folder = tmp_path_factory.mktemp("parity")
    indexes: dict[str, ChunkIndex] = {
        "edge": edge_index(folder / "shard", embedder.dim, PLAIN_WORDS),
        "server": local_server_index(folder / "local", embedder.dim, PLAIN_WORDS),
    }
    for index in indexes.values():
        index.upsert(chunks)
    yield indexes
    for index in indexes.values():
        index.close()


@pytest.fixture(scope="module")
def queries() -> list[str]:
    return [q["text"] for q in _lines("queries.jsonl", QUERIES)]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_both_backends_return_the_same_top_10(
    backends: dict[str, ChunkIndex], queries: list[str], embedder: Embedder, mode: Mode
) -> None:
    """Through the served retriever, which orders RRF's exact ties by id (the engines order
    them arbitrarily, so the raw fused lists may differ inside a tie group)."""
    config = RetrievalConfig.from_settings(SHIPPED.retrieval)
    retrievers = {n: HybridRetriever(i, embedder, config) for n, i in backends.items()}
    found = 0
    for query in queries:
        ranked = {
            name: [h.id for h in retriever.retrieve(SCOPE, query, TOP, mode)]
            for name, retriever in retrievers.items()
        }
        assert ranked["edge"] == ranked["server"], query
        found += len(ranked["edge"])
    assert found >= QUERIES * TOP // 2  # the queries do find documents: the comparison is real


def test_local_mode_refuses_a_tokenizer_it_cannot_score(tmp_path: Path) -> None:
    """It would raise NotImplementedError on the first text query; it refuses at start-up."""
    stemmed = TextIndexConfig.from_settings(SHIPPED.index)
    assert stemmed.stemmer == "english"  # the shipped default, which the embedded engine applies
    client = QdrantClient(path=str(tmp_path / "local"))
    with pytest.raises(ValueError, match=r"local mode .* lowercased words only"):
        ServerIndex(client, "chunks", 4, stemmed, bm25_params())
    assert not client.collection_exists("chunks")
    client.close()


def test_stopwords_and_stemmer_set_empty_are_off_for_a_server_too(tmp_path: Path) -> None:
    """`RAG_BM25_STOPWORDS=''` (what local mode's refusal says to set) turns them off: the text
    index is made without stopwords, never with a language named '' (which qdrant-client refused
    while creating the payload indexes, leaving a collection without its text index)."""
    settings = Settings(bm25_stemmer="", bm25_stopwords="", bm25_ascii_folding=False)
    plain = TextIndexConfig.from_settings(settings.index)
    client = QdrantClient(path=str(tmp_path / "local"))
    index = ServerIndex(client, "chunks", 4, plain, bm25_params())
    payload = {"tenant_id": "t", "doc_id": "d", "text": "the red fox"}
    vector = np.ones(4, dtype=np.float32) / 2
    index.upsert([IndexedChunk(chunk_point_id("t", "d", "h"), vector, payload)])
    query = engine_query(TenantScope("t"), 5, text="fox")
    assert [hit.payload["doc_id"] for hit in index.search(query)] == ["d"]
    index.close()


@pytest.mark.parametrize(
    "setting",
    [
        {"engine_search_threads": 4},
        {"engine_indexing_threads": 2},
        {"index_optimize_min_unindexed": 100},
        {"index_optimize_interval_seconds": 10.0},
    ],
)
def test_an_edge_only_setting_in_server_mode_is_a_start_up_error(
    tmp_path: Path, setting: dict
) -> None:
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"RAG_{name.upper()}: only index mode 'edge'"):
        Settings(index_mode="server", qdrant_url="http://127.0.0.1:6333", **setting)
    Settings(index_mode="edge", data_dir=tmp_path, **setting)  # where it applies, it is fine


@pytest.mark.parametrize(
    "setting",
    [
        {"qdrant_url": "http://127.0.0.1:6333"},
        {"qdrant_path": Path("local")},
        {"qdrant_shard_number": 3},
        {"qdrant_replication_factor": 2},
        {"qdrant_write_consistency_factor": 2},
    ],
)
def test_a_server_only_setting_in_edge_mode_is_a_start_up_error(setting: dict) -> None:
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"RAG_{name.upper()}: only index mode 'server'"):
        Settings(index_mode="edge", **setting)
    Settings(index_mode="server", **{"qdrant_url": "http://127.0.0.1:6333", **setting})


def test_the_environment_is_checked_as_well(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_INDEX_MODE", "server")
    monkeypatch.setenv("RAG_ENGINE_SEARCH_THREADS", "4")
    with pytest.raises(ValueError, match="RAG_ENGINE_SEARCH_THREADS"):
        Settings()
