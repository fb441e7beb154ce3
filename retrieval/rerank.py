"""Second-stage reranking of the fused top N: a local cross-encoder, or Cohere Rerank.

A reranker reads the query and each candidate together, which is slower but sharper than the
bi-encoder and BM25 legs, so it only sees the few dozen candidates fusion ranked highest. When
none can be loaded the API must say so instead of quietly returning the fused order, so
`load_reranker` reports why it failed rather than returning a no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
import numpy as np

from core.inference import InferenceThread
from core.onnx_models import (
    InferenceOptions,
    OnnxModel,
    length_order,
    onnx_or_none,
)
from core.settings import Settings

log = logging.getLogger(__name__)


class Reranker(Protocol):
    name: str

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, higher is better, in the order given."""
        ...


class RerankerError(RuntimeError):
    """The reranker was available but failed on this request (e.g. the remote API erred)."""


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder from a local folder or the local hub cache.

    With `inference` options for ONNX it runs on ONNX Runtime, falling back to torch with the
    reason logged when the model cannot be exported; without, it is the torch reference.
    """

    def __init__(
        self,
        model: str,
        batch_size: int,
        max_tokens: int | None = None,
        inference: InferenceOptions | None = None,
    ) -> None:
        self.name = model
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        self._onnx, self.fallback_reason = onnx_or_none("cross-encoder", model, inference)
        if self._onnx is None:
            from sentence_transformers import CrossEncoder

            if inference is not None:
                import torch

                torch.set_num_threads(inference.threads)
            self._model = CrossEncoder(model, device="cpu", max_length=max_tokens)
        self.backend = "torch" if self._onnx is None else "onnx"
        self._thread = InferenceThread("rerank")

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        if self._onnx is not None:
            return self._thread.run(self._score_onnx, self._onnx, query, list(texts))
        pairs = [(query, t) for t in texts]
        scores = self._thread.run(
            self._model.predict, pairs, batch_size=self._batch_size, show_progress_bar=False
        )
        return [float(s) for s in scores]

    def _score_onnx(self, onnx: OnnxModel, query: str, texts: list[str]) -> list[float]:
        order = length_order([len(t) for t in texts])
        scores = np.empty(len(texts), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            rows = order[start : start + self._batch_size]
            batch = [texts[i] for i in rows]
            scores[rows] = onnx.run([query] * len(batch), batch, self._max_tokens).reshape(-1)
        return [float(s) for s in scores]


class CohereReranker:
    """Cohere's v2 rerank endpoint over HTTP; `transport` lets tests replay recorded answers."""

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.name = f"cohere:{model}"
        self._model = model
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
            transport=transport,
        )

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        body = {"model": self._model, "query": query, "documents": list(texts)}
        try:
            response = self._client.post("/v2/rerank", json=body)
            response.raise_for_status()
            results = response.json()["results"]
            scores = [0.0] * len(texts)
            for r in results:
                scores[int(r["index"])] = float(r["relevance_score"])
        except (httpx.HTTPError, KeyError, IndexError, TypeError, ValueError) as exc:
            raise RerankerError(f"Cohere rerank failed: {exc}") from exc
        return scores

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class RerankerStatus:
    """What start-up found: the reranker, or why there is none."""

    reranker: Reranker | None
    name: str
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.reranker is not None


def load_reranker(
    settings: Settings, transport: httpx.BaseTransport | None = None
) -> RerankerStatus:
    """Cohere when a key is set, else the cross-encoder named in settings, loaded offline."""
    if settings.cohere_api_key is not None:
        cohere = CohereReranker(
            settings.cohere_api_key.get_secret_value(),
            settings.cohere_rerank_model,
            settings.cohere_base_url,
            transport=transport,
        )
        return RerankerStatus(cohere, cohere.name)
    model = settings.reranker_model
    try:
        reranker = CrossEncoderReranker(
            model,
            settings.rerank_batch_size,
            settings.rerank_max_tokens,
            InferenceOptions.from_settings(settings),
        )
        return RerankerStatus(reranker, model)
    except (OSError, ValueError, RuntimeError) as exc:
        return RerankerStatus(
            None,
            model,
            f"reranker model {model!r} could not be loaded from a local folder or the local "
            f"model cache ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); set "
            "RAG_RERANKER_MODEL to a local cross-encoder folder or RAG_COHERE_API_KEY",
        )
