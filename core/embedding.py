"""Dense embeddings, computed once per (model, chunk hash) and cached durably.

The cache is what makes "unchanged chunks are never embedded twice" hold across documents,
re-syncs and restarts: a chunk that moved, or survived an edit, is looked up, not re-encoded.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.inference import InferenceThread
from core.model_digest import model_digest
from core.onnx_models import (
    InferenceOptions,
    OnnxModel,
    length_order,
    onnx_or_none,
)
from core.sqlite import Migration, SchemaError, SqliteStore

log = logging.getLogger(__name__)

_MIGRATIONS = [
    Migration(
        1,
        "vectors by model and chunk hash",
        """
CREATE TABLE IF NOT EXISTS embeddings (
    model TEXT NOT NULL,
    chunk_hash TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (model, chunk_hash)
) WITHOUT ROWID;
""",
    )
]
_SQL_VARS = 500


class Embedder:
    """A sentence-transformers bi-encoder; `texts_embedded` counts every text sent to the model.

    With `inference` options for ONNX it runs on ONNX Runtime (see core/onnx_models.py), falling
    back to torch with the reason logged (and kept in `fallback_reason`) when the model cannot be
    exported; without, it is the torch reference.
    """

    def __init__(
        self,
        model: str,
        batch_size: int,
        query_prefix: str = "",
        inference: InferenceOptions | None = None,
    ) -> None:
        self.model_name = model
        # What the embedding cache files vectors under: the model's name and the digest of its
        # files, since new weights at the same path (a fine-tuned or upgraded model) make other
        # vectors; ONNX and torch vectors agree to cosine 0.9999 and share it; int8 ones do not.
        digest = model_digest(model)
        self.vectors_key = f"{model}@{digest}" if digest else model
        self.quantize: str | None = None  # the weights' quantization, when it applies (ONNX)
        self._batch_size = batch_size
        self.query_prefix = query_prefix
        self._onnx, self.fallback_reason = onnx_or_none("embedder", model, inference)
        if self._onnx is not None:
            self.backend = "onnx"
            if inference is not None and inference.quantize:
                # Other vectors than the float model's: cached apart from them.
                self.quantize = inference.quantize
                self.vectors_key = f"{self.vectors_key}#{inference.quantize}"
            self.dim = int(self._onnx.meta["dim"])
            self.tokenizer = self._onnx.tokenizer
            max_seq_length = self._onnx.max_length
        else:
            from sentence_transformers import SentenceTransformer

            if inference is not None:
                import torch

                torch.set_num_threads(inference.threads)
            self.backend = "torch"
            self._model = SentenceTransformer(model, device="cpu")
            self.dim = int(self._model.get_embedding_dimension())
            self.tokenizer = self._model.tokenizer
            max_seq_length = int(self._model.max_seq_length)
        # What the model reads of one text, less its [CLS]/[SEP]: the longest chunk it can embed.
        self.max_tokens = max_seq_length - 2
        self._lock = threading.Lock()
        self._query_thread = InferenceThread("embed-query")
        self._document_thread = InferenceThread("embed-documents")
        self.texts_embedded = 0

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            self.texts_embedded += len(texts)
        return self._document_thread.run(self._encode, list(texts))

    def embed_query(self, text: str) -> np.ndarray:
        return self._query_thread.run(self._encode, [self.query_prefix + text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self._onnx is not None:
            return self._encode_onnx(self._onnx, texts)
        vectors = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)

    def _encode_onnx(self, onnx: OnnxModel, texts: list[str]) -> np.ndarray:
        """As sentence-transformers batches: longest first, normalised like `encode` above."""
        order = length_order([len(t) for t in texts])
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            rows = order[start : start + self._batch_size]
            out[rows] = onnx.run([texts[i] for i in rows])
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class EmbeddingCache(SqliteStore):
    """Vectors by (model, chunk hash); the model as `Embedder.vectors_key` names it: its name,
    the digest of its files and the quantization of its weights.

    Only a cache: whatever happens to the file costs re-embedding, never a failed document. A file
    that fails SQLite's integrity check when opened is set aside (renamed `*.corrupt-<time>`, kept
    for inspection) and a fresh one started; a read or write error later counts as a miss or a
    skipped write.
    """

    def __init__(self, path: Path) -> None:
        try:
            super().__init__(path, _MIGRATIONS)
            healthy = self._conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        except (sqlite3.DatabaseError, SchemaError):
            healthy = False
        if not healthy:
            self._set_aside(path)
            super().__init__(path, _MIGRATIONS)

    def _set_aside(self, path: Path) -> None:
        if getattr(self, "_conn", None) is not None:
            self._conn.close()
        stamp = time.strftime("%Y%m%dT%H%M%S")
        log.warning("embedding cache %s is corrupt; set aside, starting an empty one", path)
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{path}{suffix}")
            if part.exists():
                part.rename(f"{part}.corrupt-{stamp}")

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        try:
            return self._get_many(model, hashes)
        except sqlite3.DatabaseError as exc:
            log.warning("embedding cache read failed, embedding instead: %s", exc)
            return {}

    def _get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        with self._lock:
            for start in range(0, len(unique), _SQL_VARS):
                part = unique[start : start + _SQL_VARS]
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    f"SELECT chunk_hash, vector FROM embeddings "
                    f"WHERE model = ? AND chunk_hash IN ({marks})",
                    [model, *part],
                )
                for chunk_hash, blob in rows:
                    found[chunk_hash] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        rows = [(model, h, v.astype(np.float32).tobytes()) for h, v in vectors.items()]
        try:
            with self.transaction() as conn:
                conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
        except sqlite3.DatabaseError as exc:
            log.warning("embedding cache write skipped: %s", exc)


class CachedEmbedder:
    """Embeds chunks by hash: cached vectors are reused, only unseen hashes reach the model."""

    def __init__(self, embedder: Embedder, cache: EmbeddingCache) -> None:
        self.embedder = embedder
        self._cache = cache

    def embed_chunks(
        self, hashes: Sequence[str], texts: Sequence[str]
    ) -> tuple[list[np.ndarray], set[str]]:
        """The vectors of the chunks, in order, and the hashes that missed the cache.

        The misses are what this call sent to the model, so a caller can count its own work:
        threads that share the embedder cannot tell theirs from a difference of its counter.
        """
        model = self.embedder.vectors_key
        cached = self._cache.get_many(model, hashes)
        # A damaged row decodes to the wrong length; embed it again rather than index it.
        vectors = {h: v for h, v in cached.items() if v.shape == (self.embedder.dim,)}
        missing = {h: t for h, t in zip(hashes, texts, strict=True) if h not in vectors}
        if missing:
            fresh = self.embedder.embed_documents(list(missing.values()))
            new = dict(zip(missing, fresh, strict=True))
            self._cache.put_many(model, new)
            vectors.update(new)
        return [vectors[h] for h in hashes], set(missing)
