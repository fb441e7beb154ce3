"""The embedding cache survives damage: it is only a cache, so a corrupt file costs re-embedding,
never a failed document or a worker that cannot start."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.embedding import CachedEmbedder, Embedder, EmbeddingCache

TEXTS = [f"chunk number {i} about razorbills and guillemots" for i in range(300)]
HASHES = [f"h{i}" for i in range(300)]


def _fill(path: Path, embedder: Embedder) -> list[np.ndarray]:
    cache = EmbeddingCache(path)
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

    cache = EmbeddingCache(path)
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
    cache = EmbeddingCache(path)
    try:
        vectors, _ = CachedEmbedder(embedder, cache).embed_chunks(HASHES[:3], TEXTS[:3])
        assert len(vectors) == 3 and cache.get_many(embedder.model_name, HASHES[:3]).keys() == {
            *HASHES[:3]
        }
    finally:
        cache.close()


def test_a_damaged_vector_is_embedded_again(tmp_path: Path, embedder: Embedder) -> None:
    """A row whose blob lost bytes decodes to the wrong length: re-embedded, not indexed."""
    path = tmp_path / "embeddings.sqlite"
    _fill(path, embedder)
    cache = EmbeddingCache(path)
    try:
        with cache._lock:
            cache._conn.execute("UPDATE embeddings SET vector = substr(vector, 1, 100)")
        before = embedder.texts_embedded
        vectors, missed = CachedEmbedder(embedder, cache).embed_chunks(HASHES[:5], TEXTS[:5])
        assert embedder.texts_embedded - before == 5 and missed == set(HASHES[:5])
        assert all(v.shape == (embedder.dim,) for v in vectors)
    finally:
        cache.close()
