"""The embedding cache survives damage: it is only a cache, so a corrupt file costs re-embedding,
never a failed document or a worker that cannot start. In PostgreSQL, what one host embedded
every other host reuses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from core.embedding import CachedEmbedder, Embedder, EmbeddingCache
from core.settings import Settings
from tests.support.services import postgres_url

TEXTS = [f"chunk number {i} about razorbills and guillemots" for i in range(300)]
HASHES = [f"h{i}" for i in range(300)]


def _open(path: Path) -> EmbeddingCache:
    """The cache of the data dir `path` is in, as the runtime opens it."""
    return EmbeddingCache.open(Settings(data_dir=path.parent))


def _fill(path: Path, embedder: Embedder) -> list[np.ndarray]:
    cache = _open(path)
    vectors, _ = CachedEmbedder(embedder, cache).embed_chunks(HASHES, TEXTS)
    cache.close()
    return vectors


def test_a_corrupt_cache_file_is_set_aside_and_rebuilt(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "embeddings.sqlite"
    expected = _fill(path, embedder)
    data = bytearray(path.read_bytes())
    assert len(data) > 16_384
    data[4096:12_288] = b"\xde\xad\xbe\xef" * 2048  # garbage over pages of the table's b-tree
    path.write_bytes(bytes(data))

    cache = _open(path)
    try:
        assert list(tmp_path.glob("embeddings.sqlite.corrupt-*"))  # kept for inspection
        cached = CachedEmbedder(embedder, cache)
        before = embedder.texts_embedded
        again, missed = cached.embed_chunks(HASHES, TEXTS)
        assert embedder.texts_embedded - before == len(TEXTS)  # all embedded afresh
        assert missed == set(HASHES)
        for a, b in zip(expected, again, strict=True):
            assert np.allclose(a, b, atol=1e-5)
        before = embedder.texts_embedded
        assert cached.embed_chunks(HASHES, TEXTS)[1] == set()
        assert embedder.texts_embedded == before  # and cached again
    finally:
        cache.close()


def test_a_file_that_is_not_a_database_is_replaced(tmp_path: Path, embedder: Embedder) -> None:
    path = tmp_path / "embeddings.sqlite"
    path.write_bytes(b"this is not an SQLite database" * 100)
    cache = _open(path)
    try:
        vectors, _ = CachedEmbedder(embedder, cache).embed_chunks(HASHES[:3], TEXTS[:3])
        assert len(vectors) == 3 and cache.get_many(embedder.vectors_key, HASHES[:3]).keys() == {
            *HASHES[:3]
        }
    finally:
        cache.close()


def test_a_damaged_vector_is_embedded_again(tmp_path: Path, embedder: Embedder) -> None:
    """A row whose blob lost bytes decodes to the wrong length: re-embedded, not indexed."""
    path = tmp_path / "embeddings.sqlite"
    _fill(path, embedder)
    cache = _open(path)
    try:
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE embeddings SET vector = substr(vector, 1, 100)")
        before = embedder.texts_embedded
        vectors, missed = CachedEmbedder(embedder, cache).embed_chunks(HASHES[:5], TEXTS[:5])
        assert embedder.texts_embedded - before == 5 and missed == set(HASHES[:5])
        assert all(v.shape == (embedder.dim,) for v in vectors)
    finally:
        cache.close()


def test_what_one_host_embedded_another_reuses(tmp_path: Path, embedder: Embedder) -> None:
    url = postgres_url("embeddings_two_hosts")
    hosts = [
        EmbeddingCache.open(Settings(data_dir=tmp_path / name, state={"url": url}))
        for name in ("a", "b")
    ]
    try:
        first, missed = CachedEmbedder(embedder, hosts[0]).embed_chunks(HASHES[:40], TEXTS[:40])
        assert missed == set(HASHES[:40])
        before = embedder.texts_embedded
        second, missed = CachedEmbedder(embedder, hosts[1]).embed_chunks(HASHES[:40], TEXTS[:40])
        assert missed == set() and embedder.texts_embedded == before
        assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
        # The same vectors written again (two hosts embedding one chunk at once) change nothing.
        hosts[1].put_many(embedder.vectors_key, dict(zip(HASHES[:40], second, strict=True)))
    finally:
        for cache in hosts:
            cache.close()
    assert not (tmp_path / "a" / "embeddings.sqlite").exists()
