"""RAGAS over a golden set: answer each question from the retrieved chunks, then score it.

With a judge, the four RAGAS LLM metrics run (faithfulness, answer relevancy, context precision
and context recall, through ragas's structured-output LLM interface, so any judge implementing
`InstructorBaseRagasLLM` plugs in). Without one, only RAGAS's non-LLM metrics run (ID-based and
string-similarity context precision/recall against the relevant documents, and answer-vs-reference
string similarity when there is an answer), and the result says the LLM metrics were skipped.

Cost is bounded by the caller's sample size, `concurrency` items in flight, a per-item timeout,
and a cache (`ItemCache`: a run's rows in the state database for a tenant's run, a folder for a
benchmark's): each finished item is written to it with a fingerprint of its inputs, so an
interrupted run resumes where it stopped and a finished item is never paid twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from core.embedding import Embedder
from core.extras import missing_extra
from core.llm import ChatClient, Source
from eval.golden import GoldenItem
from eval.llm import Answerer, bounded_map
from eval.metrics import mean
from eval.runner import Retrieved

try:
    from ragas.embeddings.base import BaseRagasEmbedding
    from ragas.llms.base import InstructorBaseRagasLLM
except ModuleNotFoundError as exc:
    raise missing_extra("eval", "RAGAS scoring (rag eval, the nightly evaluation)", exc) from exc

LLM_METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
_VERSION = 1  # bump when scoring changes, so cached items are recomputed
ItemsDone = Callable[[int, int], None]  # items settled so far, of all


class ItemCache(Protocol):
    """Scored items by item id, as the JSON text of their `ItemResult`."""

    def get(self, item_id: str) -> str | None: ...

    def put(self, item_id: str, result: str) -> None: ...


class FolderItemCache:
    """An `ItemCache` in a run's folder, `<folder>/<digest of the id>.json`: a benchmark's run,
    whose report is a folder on the operator's host."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def _path(self, item_id: str) -> Path:
        return self._folder / f"{hashlib.sha256(item_id.encode()).hexdigest()[:32]}.json"

    def get(self, item_id: str) -> str | None:
        try:
            return self._path(item_id).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def put(self, item_id: str, result: str) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        self._path(item_id).write_text(result, encoding="utf-8")


class LocalRagasEmbeddings(BaseRagasEmbedding):
    """The platform's own bi-encoder behind ragas's embeddings interface (answer relevancy).

    Questions are embedded as documents (no query prefix) because answer relevancy compares a
    question with questions, symmetrically.
    """

    def __init__(self, embedder: Embedder) -> None:
        super().__init__()
        self._embedder = embedder

    def embed_text(self, text: str, **kwargs: Any) -> list[float]:
        return self.embed_texts([text])[0]

    def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return self._embedder.embed_documents(texts).tolist()

    async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
        return await asyncio.to_thread(self.embed_text, text)

    async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
        return await asyncio.to_thread(self.embed_texts, texts)


@dataclass
class RagasCase:
    """One golden item with what retrieval gave it."""

    item: GoldenItem
    contexts: list[Retrieved]  # the retrieved chunks, best first
    reference_contexts: list[str]  # the relevant documents' texts


@dataclass
class ItemResult:
    id: str
    question: str
    reference: str | None
    response: str | None
    contexts: list[dict[str, str]]
    scores: dict[str, float]  # only the metrics that apply to this item
    tags: dict[str, str] = field(default_factory=dict)
    error: str = ""
    fingerprint: str = ""


@dataclass
class RagasResult:
    items: list[ItemResult]
    llm_metrics: bool
    notes: list[str]
    from_cache: int

    @property
    def per_item(self) -> dict[str, dict[str, float]]:
        """Metric -> item id -> value, skipping values that are not numbers (NaN)."""
        table: dict[str, dict[str, float]] = {}
        for r in self.items:
            for metric, value in r.scores.items():
                if not math.isnan(value):
                    table.setdefault(metric, {})[r.id] = value
        return table

    @property
    def means(self) -> dict[str, float]:
        return {metric: mean(values) for metric, values in self.per_item.items()}


_JUDGE_SYSTEM = (
    "You are an evaluation judge. Reply with one JSON object, and nothing else, that is valid "
    "against this JSON schema:\n"
)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
M = TypeVar("M")


class ChatJudge(InstructorBaseRagasLLM):
    """RAGAS's judge interface over the platform's chat client: the response model's JSON schema
    in the system message, RAGAS's prompt as the user message, the reply validated by pydantic."""

    def __init__(self, client: ChatClient) -> None:
        self._client = client

    def _messages(self, prompt: str, response_model: Any) -> list[dict[str, str]]:
        schema = json.dumps(response_model.model_json_schema())
        return [
            {"role": "system", "content": _JUDGE_SYSTEM + schema},
            {"role": "user", "content": prompt},
        ]

    def generate(self, prompt: str, response_model: type[M]) -> M:
        text = self._client.complete(self._messages(prompt, response_model), json_mode=True)
        return response_model.model_validate_json(_FENCE.sub("", text.strip()))  # type: ignore[attr-defined]

    async def agenerate(self, prompt: str, response_model: type[M]) -> M:
        return await asyncio.to_thread(self.generate, prompt, response_model)


def _legacy(name: str) -> Any:
    """A metric class from ragas's legacy namespace: 0.4 has no collections port for these yet."""
    import ragas.metrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return getattr(ragas.metrics, name)


class RagasScorer:
    def __init__(
        self,
        cache: ItemCache,
        *,
        answerer: Answerer | None = None,
        judge: InstructorBaseRagasLLM | None = None,
        embeddings: BaseRagasEmbedding | None = None,
        identity: str = "",
        concurrency: int,
        timeout_s: float,
    ) -> None:
        """`identity` names the answerer and judge models; a change invalidates cached items.
        `concurrency` and `timeout_s`: the settings' eval_concurrency and eval_timeout_s."""
        # ragas reports usage over the network unless told not to; it reads this when it first
        # tracks a call, which the metrics below make.
        os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
        from ragas.metrics.collections import (
            AnswerRelevancy,
            ContextPrecisionWithReference,
            ContextRecall,
            Faithfulness,
            NonLLMStringSimilarity,
        )

        if judge is not None and embeddings is None:
            raise ValueError("the judge's answer relevancy needs embeddings")
        self._cache = cache
        self._answerer = answerer
        self._judge = judge
        self._identity = identity
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._string = NonLLMStringSimilarity()
        self._id_precision = _legacy("IDBasedContextPrecision")()
        self._id_recall = _legacy("IDBasedContextRecall")()
        self._text_precision = _legacy("NonLLMContextPrecisionWithReference")()
        self._text_recall = _legacy("NonLLMContextRecall")()
        if judge is not None:
            self._faithfulness = Faithfulness(llm=judge)
            self._relevancy = AnswerRelevancy(llm=judge, embeddings=embeddings)
            self._precision = ContextPrecisionWithReference(llm=judge)
            self._recall = ContextRecall(llm=judge)

    def notes(self) -> list[str]:
        notes = []
        if self._answerer is None:
            notes.append(
                "No answer LLM configured (RAG_LLM_BASE_URL): answers were not generated, so "
                "faithfulness, answer relevancy and string similarity were skipped."
            )
        if self._judge is None:
            notes.append(
                "No judge configured (RAG_EVAL_JUDGE_MODEL): the RAGAS LLM metrics "
                f"({', '.join(LLM_METRICS)}) were skipped; only the non-LLM metrics ran."
            )
        return notes

    def score(self, cases: Sequence[RagasCase], on_done: ItemsDone | None = None) -> RagasResult:
        return asyncio.run(self.ascore(cases, on_done))

    async def ascore(
        self, cases: Sequence[RagasCase], on_done: ItemsDone | None = None
    ) -> RagasResult:
        """`on_done(done, total)` after the cache is read and after each item settles."""
        results: dict[str, ItemResult] = {}
        todo: list[RagasCase] = []
        for case in cases:
            cached = self._cached(case)
            if cached is not None:
                results[case.item.id] = cached
            else:
                todo.append(case)
        from_cache = done = len(results)
        report = on_done or (lambda done, total: None)
        report(done, len(cases))

        async def score_one(case: RagasCase) -> ItemResult:
            nonlocal done
            try:
                return await self._score_one(case)
            finally:  # scored, failed or timed out (cancelled): settled either way
                done += 1
                report(done, len(cases))

        outcomes = await bounded_map(score_one, todo, self._concurrency, self._timeout_s)
        for case, outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # Not cached: a resumed run tries the item again.
                result = self._skeleton(case)
                result.scores = await self._non_llm_scores(case, None)
                result.error = f"{type(outcome).__name__}: {outcome}".strip().rstrip(":")
            else:
                result = outcome
                self._cache.put(case.item.id, json.dumps(asdict(result)))
            results[case.item.id] = result
        ordered = [results[c.item.id] for c in cases]
        return RagasResult(ordered, self._judge is not None, self.notes(), from_cache)

    def _fingerprint(self, case: RagasCase) -> str:
        payload = {
            "v": _VERSION,
            "who": self._identity,
            "answerer": self._answerer is not None,
            "judge": self._judge is not None,
            "item": case.item.model_dump(),
            "contexts": [asdict(c) for c in case.contexts],
            "reference_contexts": case.reference_contexts,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def _cached(self, case: RagasCase) -> ItemResult | None:
        text = self._cache.get(case.item.id)
        if text is None:
            return None
        try:
            result = ItemResult(**json.loads(text))
        except (ValueError, TypeError):
            return None
        return result if result.fingerprint == self._fingerprint(case) else None

    def _skeleton(self, case: RagasCase) -> ItemResult:
        return ItemResult(
            id=case.item.id,
            question=case.item.question,
            reference=case.item.reference,
            response=None,
            contexts=[asdict(c) for c in case.contexts],
            scores={},
            tags=dict(case.item.tags),
            fingerprint=self._fingerprint(case),
        )

    async def _score_one(self, case: RagasCase) -> ItemResult:
        result = self._skeleton(case)
        texts = [c.text for c in case.contexts]
        if self._answerer is not None and texts:
            sources = [Source(c.chunk_id or c.doc_id, c.text) for c in case.contexts]
            result.response = await self._answerer(case.item.question, sources)
        result.scores = await self._non_llm_scores(case, result.response)
        if self._judge is not None and texts:
            result.scores.update(await self._llm_scores(case, texts, result.response))
        return result

    async def _non_llm_scores(self, case: RagasCase, response: str | None) -> dict[str, float]:
        from ragas import SingleTurnSample

        item, scores = case.item, {}
        retrieved_ids = [c.doc_id for c in case.contexts]
        texts = [c.text for c in case.contexts]
        if item.relevant_doc_ids and retrieved_ids:
            ids = SingleTurnSample(
                retrieved_context_ids=retrieved_ids, reference_context_ids=item.relevant_doc_ids
            )
            scores["id_context_precision"] = await self._id_precision.single_turn_ascore(ids)
            scores["id_context_recall"] = await self._id_recall.single_turn_ascore(ids)
        if case.reference_contexts and texts:
            ctx = SingleTurnSample(
                retrieved_contexts=texts, reference_contexts=case.reference_contexts
            )
            scores["nonllm_context_precision"] = await self._text_precision.single_turn_ascore(ctx)
            scores["nonllm_context_recall"] = await self._text_recall.single_turn_ascore(ctx)
        if response and item.reference:
            similar = await self._string.ascore(reference=item.reference, response=response)
            scores["string_similarity"] = similar.value
        return {k: float(v) for k, v in scores.items()}

    async def _llm_scores(
        self, case: RagasCase, texts: list[str], response: str | None
    ) -> dict[str, float]:
        question, reference = case.item.question, case.item.reference
        scores = {}
        if response:
            faithful = await self._faithfulness.ascore(
                user_input=question, response=response, retrieved_contexts=texts
            )
            relevant = await self._relevancy.ascore(user_input=question, response=response)
            scores["faithfulness"], scores["answer_relevancy"] = faithful.value, relevant.value
        if reference:
            precision = await self._precision.ascore(
                user_input=question, reference=reference, retrieved_contexts=texts
            )
            recall = await self._recall.ascore(
                user_input=question, retrieved_contexts=texts, reference=reference
            )
            scores["context_precision"], scores["context_recall"] = precision.value, recall.value
        return {k: float(v) for k, v in scores.items()}
