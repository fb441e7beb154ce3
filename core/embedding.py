"""Dense embeddings, computed once per (model, chunk hash) and cached durably.

The cache is what makes "unchanged chunks are never embedded twice" hold across documents,
re-syncs and restarts: a chunk that moved, or survived an edit, is looked up, not re-encoded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import Column, Engine, LargeBinary, MetaData, Table, Text, select
from sqlalchemy.exc import SQLAlchemyError

from core.hub import local_models_only
from core.inference import InferenceThread
from core.model_digest import model_folder, weights_digest
from core.onnx_models import (
    InferenceOptions,
    OnnxModel,
    length_order,
    onnx_or_none,
)
from core.settings import Settings
from core.sqlite import SchemaError
from core.state.database import (
    engine_for,
    insert_new,
    reading,
    release,
    store_url,
)
from core.state.stores import EMBEDDINGS

log = logging.getLogger(__name__)


class ModelUnavailableError(OSError):
    """The configured model is nowhere on this machine: a configuration error, said at once."""


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
        local_models_only()
        self.model_name = model
        # What the embedding cache files vectors under: the model's name and the digest of its
        # files, since new weights at the same path (a fine-tuned or upgraded model) make other
        # vectors; ONNX and torch vectors agree to cosine 0.9999 and share it; int8 ones do not.
        folder = model_folder(model)
        if folder is None:
            raise ModelUnavailableError(
                f"the embedding model {model!r} is neither a folder nor in the local Hugging "
                "Face cache (models are never downloaded at run time); set RAG_EMBEDDING_MODEL "
                "to a sentence-transformers model folder"
            )
        self.vectors_key = f"{model}@{weights_digest(folder)}"
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


_VECTORS = Table(
    "embeddings",
    MetaData(),
    Column("model", Text, primary_key=True),
    Column("chunk_hash", Text, primary_key=True),
    Column("vector", LargeBinary, nullable=False),
)
_BINDS = 500  # chunk hashes per lookup statement


class EmbeddingCache:
    """Vectors by (model, chunk hash); the model as `Embedder.vectors_key` names it: its name,
    the digest of its files and the quantization of its weights. In the state database, so every
    host reuses what any host embedded.

    Only a cache: whatever happens to it costs re-embedding, never a failed document. A SQLite
    file that fails the integrity check when opened is set aside (renamed `*.corrupt-<time>`,
    kept for inspection) and a fresh one started; a read or write error later (a damaged page, a
    lost connection) counts as a miss or a skipped write.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, settings: Settings) -> EmbeddingCache:
        url = store_url(settings, EMBEDDINGS)
        if url.startswith("sqlite:"):
            try:
                engine = engine_for(url, EMBEDDINGS, settings.state)
            except (SQLAlchemyError, SchemaError):
                engine = None
            if engine is not None and _quick_check(engine):
                return cls(engine)
            if engine is not None:
                release(engine)
            _set_aside(settings.data_dir / EMBEDDINGS.sqlite_file)
        return cls(engine_for(url, EMBEDDINGS, settings.state))

    def get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        try:
            return self._get_many(model, hashes)
        except SQLAlchemyError as exc:
            log.warning("embedding cache read failed, embedding instead: %s", exc)
            return {}

    def _get_many(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(hashes))
        columns = _VECTORS.c
        with reading(self._engine) as conn:
            for start in range(0, len(unique), _BINDS):
                query = select(columns.chunk_hash, columns.vector).where(
                    columns.model == model, columns.chunk_hash.in_(unique[start : start + _BINDS])
                )
                for chunk_hash, blob in conn.execute(query):
                    found[chunk_hash] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        rows = [
            {"model": model, "chunk_hash": h, "vector": v.astype(np.float32).tobytes()}
            for h, v in vectors.items()
        ]
        try:
            with self._engine.begin() as conn:
                insert_new(conn, _VECTORS, rows)
        except SQLAlchemyError as exc:
            log.warning("embedding cache write skipped: %s", exc)

    def close(self) -> None:
        release(self._engine)


def _quick_check(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA quick_check").scalar() == "ok"
    except SQLAlchemyError:
        return False


def _set_aside(path: Path) -> None:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    log.warning("embedding cache %s is corrupt; set aside, starting an empty one", path)
    for suffix in ("", "-wal", "-shm"):
        part = Path(f"{path}{suffix}")
        if part.exists():
            part.rename(f"{part}.corrupt-{stamp}")


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
