"""Settings for a test: a scratch data dir and bucket under `tmp`, on either index backend."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings


def make_settings(tmp: Path, backend: str = "edge", **overrides: object) -> Settings:
    if backend == "server":
        # qdrant-client's local mode scores BM25 only with the plain word tokenizer and refuses
        # any other at start-up (`ServerIndex`); a real server takes the configured stemmer and
        # stopwords as the embedded engine does. tests/test_backend_parity.py compares the two
        # backends' rankings with this one tokenizer on both.
        overrides = {
            "bm25_stemmer": None,
            "bm25_stopwords": None,
            "bm25_ascii_folding": False,
            **overrides,
        }
    return Settings(
        data_dir=tmp / "data",
        bucket_url=str(tmp / "bucket"),
        index_mode=backend,
        qdrant_path=tmp / "qdrant-local" if backend == "server" else None,
        **overrides,
    )
