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

from core.hub import local_models_only
from core.inference import InferenceThread
from core.model_digest import model_folder, model_label
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
    """The reranker was available but failed on this request (e.g. the remote API erred).

    `busy`: it is rate-limited, overloaded or out of reach for now, so a retry later may work.
    """

    def __init__(self, reason: str, busy: bool = False) -> None:
        super().__init__(reason)
        self.busy = busy


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
        local_models_only()
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
    """Cohere's rerank through its official client (`cohere.ClientV2`), with the client's own
    timeout and retries (backoff on 429 and 5xx, honouring `Retry-After`).

    Its failures become `RerankerError`s: `busy` when Cohere is rate-limiting, overloaded or out
    of reach (worth a retry later), otherwise a failed request or an answer that makes no sense.
    The client speaks through an httpx client of ours, so `transport` lets tests replay
    recorded answers.
    """

    def __init__(
        self,
        api_key: str,
        model: str,
        base_url: str,
        timeout_s: float,
        max_retries: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import cohere

        self.name = f"cohere:{model}"
        self._model = model
        self._http = httpx.Client(timeout=timeout_s, transport=transport)
        self._client = cohere.ClientV2(
            api_key,
            base_url=base_url,
            timeout=timeout_s,
            max_retries=max_retries,
            httpx_client=self._http,
            client_name="ragplatform",
        )

    def score(self, query: str, texts: Sequence[str]) -> list[float]:
        from cohere.core.api_error import ApiError

        if not texts:
            return []
        try:
            reply = self._client.rerank(model=self._model, query=query, documents=list(texts))
            scores = [0.0] * len(texts)
            for r in reply.results:
                scores[r.index] = float(r.relevance_score)
        except ApiError as exc:
            busy = exc.status_code in _COHERE_BUSY
            reason = f"Cohere rerank failed: HTTP {exc.status_code}: {exc.body}"
            raise RerankerError(reason, busy) from exc
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise RerankerError(f"Cohere rerank failed: {type(exc).__name__}: {exc}", True) from exc
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            raise RerankerError(f"Cohere rerank failed: unexpected answer: {exc}") from exc
        return scores

    def close(self) -> None:
        self._http.close()


_COHERE_BUSY = {429, 503, 504}  # rate-limited, overloaded, timed out upstream: retry later


@dataclass(frozen=True)
class RerankerStatus:
    """What start-up found: the reranker, or why there is none."""

    reranker: Reranker | None
    name: str
    reason: str = ""

    @property
    def available(self) -> bool:
        return self.reranker is not None

    @property
    def label(self) -> str:
        """The reranker's name as tenants may see it: a model folder is not shown by its path."""
        return model_label(self.name)

    @property
    def public_reason(self) -> str:
        """Why there is no reranker, for tenants: which model failed, not the server's paths or
        the loader's error (the log and the operator's status have those)."""
        if self.available or not self.reason:
            return ""
        return f"reranker model {self.label!r} could not be loaded on this server"


def load_reranker(
    settings: Settings, transport: httpx.BaseTransport | None = None
) -> RerankerStatus:
    """Cohere when a key is set, else the cross-encoder named in settings, loaded offline."""
    if settings.retrieval.cohere_api_key is not None:
        cohere = CohereReranker(
            settings.retrieval.cohere_api_key.get_secret_value(),
            settings.retrieval.cohere_rerank_model,
            settings.retrieval.cohere_base_url,
            settings.retrieval.cohere_timeout_seconds,
            settings.retrieval.cohere_max_retries,
            transport=transport,
        )
        return RerankerStatus(cohere, cohere.name)
    model = settings.models.reranker_model
    if model_folder(model) is None:  # say so, rather than let the loader try and log its way
        return RerankerStatus(
            None,
            model,
            f"reranker model {model!r} is neither a folder nor in the local Hugging Face cache "
            f"(none ships with the platform); {_WHAT_TO_SET}",
        )
    try:
        reranker = CrossEncoderReranker(
            model,
            settings.models.rerank_batch_size,
            settings.models.rerank_max_tokens,
            InferenceOptions.from_settings(settings),
        )
        return RerankerStatus(reranker, model)
    except (OSError, ValueError, RuntimeError) as exc:
        return RerankerStatus(
            None,
            model,
            f"reranker model {model!r} could not be loaded from a local folder or the local "
            f"model cache ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            f"{_WHAT_TO_SET}",
        )


_WHAT_TO_SET = (
    "set RAG_RERANKER_MODEL to a local sentence-transformers CrossEncoder folder, "
    "or RAG_COHERE_API_KEY"
)
