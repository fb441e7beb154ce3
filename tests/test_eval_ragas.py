"""The RAGAS path, wired end to end without network.

STUBS (tests/support/ragas.py): the judge (`StubJudge`) and the answer LLM (`StubAnswerer`) are
deterministic local stand-ins for remote LLMs, which cannot run here. The judge implements
ragas's own LLM interface (`InstructorBaseRagasLLM`), so the real ragas metric code drives it: it
reads the input ragas puts in each prompt and decides by word overlap. The embeddings are the
real MiniLM model.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from core.embedding import Embedder
from core.llm import ANSWER_SYSTEM_PROMPT, LlmEndpoint, judge_endpoint, llm_endpoint
from core.settings import Settings
from eval.golden import GoldenItem
from eval.pipeline import llms_from_settings
from eval.ragas_scoring import (
    LLM_METRICS,
    FolderItemCache,
    LocalRagasEmbeddings,
    RagasCase,
    RagasScorer,
)
from eval.runner import Retrieved
from tests.support.ragas import FABRICATED, FakeOpenAI, StubAnswerer, StubJudge

SHIPPED = Settings()

PLANTS = (
    "Plants convert sunlight, water and carbon dioxide into glucose and oxygen in chloroplasts."
)
CHESS = "The Sicilian Defence is a chess opening that begins with the moves e4 c5."
JAZZ = "Jazz music originated in New Orleans and is known for improvisation and swing rhythms."


def _cases() -> list[RagasCase]:
    plants = GoldenItem(
        id="plants",
        question="How do plants make glucose from sunlight?",
        reference="Plants convert sunlight, water and carbon dioxide into glucose.",
        relevant_doc_ids=["d1"],
    )
    jazz = GoldenItem(
        id="jazz",
        question="Where did jazz music originate?",
        reference="Jazz originated in New Orleans.",
        relevant_doc_ids=["d11"],
    )
    return [
        RagasCase(plants, [Retrieved("d1", PLANTS), Retrieved("d7", CHESS)], [PLANTS]),
        RagasCase(jazz, [Retrieved("d7", CHESS), Retrieved("d11", JAZZ)], [JAZZ]),
    ]


@pytest.fixture(scope="module")
def embeddings(embedder: Embedder) -> LocalRagasEmbeddings:
    return LocalRagasEmbeddings(embedder)


def _scorer(tmp: Path, embeddings: LocalRagasEmbeddings, **kw: Any) -> RagasScorer:
    return RagasScorer(
        FolderItemCache(tmp / "cache"),
        judge=kw.pop("judge", None),
        answerer=kw.pop("answerer", None),
        embeddings=embeddings,
        **{"concurrency": SHIPPED.eval.concurrency, "timeout_s": SHIPPED.eval.timeout_s, **kw},
    )


def test_llm_metrics_with_stub_judge(tmp_path: Path, embeddings: LocalRagasEmbeddings) -> None:
    judge, answerer = StubJudge(), StubAnswerer()
    result = _scorer(tmp_path, embeddings, judge=judge, answerer=answerer).score(_cases())
    plants, jazz = result.items
    assert result.llm_metrics and not any("judge" in n for n in result.notes)
    assert plants.response == PLANTS and jazz.response == FABRICATED
    # Faithfulness: the extractive answer is fully supported, the fabricated one not at all.
    assert plants.scores["faithfulness"] == 1.0
    assert jazz.scores["faithfulness"] == 0.0
    # Context precision (average precision of the judge's verdicts): useful chunk first = 1,
    # useful chunk second = 1/2. Context recall: every reference sentence is in the contexts.
    assert plants.scores["context_precision"] == pytest.approx(1.0)
    assert jazz.scores["context_precision"] == pytest.approx(0.5)
    assert plants.scores["context_recall"] == jazz.scores["context_recall"] == 1.0
    # Answer relevancy: cosine of the question with the "question" the stub derives from the
    # answer, embedded by the real model: on-topic beats fabricated.
    assert 0.4 < plants.scores["answer_relevancy"] <= 1.0
    assert jazz.scores["answer_relevancy"] < plants.scores["answer_relevancy"]
    # The non-LLM metrics run beside them.
    assert plants.scores["id_context_precision"] == 0.5
    assert plants.scores["id_context_recall"] == 1.0
    assert plants.scores["string_similarity"] > jazz.scores["string_similarity"]
    assert set(result.means) >= set(LLM_METRICS)
    assert result.means["faithfulness"] == pytest.approx(0.5)
    # Two statements' worth of NLI, one per item; the judge saw every metric's prompt.
    assert set(judge.calls) == {
        "StatementGeneratorOutput",
        "NLIStatementOutput",
        "AnswerRelevanceOutput",
        "ContextPrecisionOutput",
        "ContextRecallOutput",
    }


def test_without_judge_only_non_llm_metrics(
    tmp_path: Path, embeddings: LocalRagasEmbeddings
) -> None:
    result = _scorer(tmp_path, embeddings).score(_cases())
    assert not result.llm_metrics
    assert any("LLM metrics" in n and "skipped" in n for n in result.notes)
    assert set(result.means) == {
        "id_context_precision",
        "id_context_recall",
        "nonllm_context_precision",
        "nonllm_context_recall",
    }
    plants, jazz = result.items
    assert plants.response is None
    # Non-LLM context precision: the relevant text is at rank 1 for plants, rank 2 for jazz.
    assert plants.scores["nonllm_context_precision"] == pytest.approx(1.0)
    assert jazz.scores["nonllm_context_precision"] == pytest.approx(0.5)
    assert jazz.scores["nonllm_context_recall"] == 1.0


def test_resume_uses_cached_items_and_recomputes_on_change(
    tmp_path: Path, embeddings: LocalRagasEmbeddings
) -> None:
    first_judge, first_answerer = StubJudge(), StubAnswerer()
    scorer = _scorer(tmp_path, embeddings, judge=first_judge, answerer=first_answerer)
    first = scorer.score(_cases())
    judge, answerer = StubJudge(), StubAnswerer()
    again = _scorer(tmp_path, embeddings, judge=judge, answerer=answerer).score(_cases())
    assert again.from_cache == 2
    assert judge.calls.total() == 0 and answerer.calls == 0
    assert [i.scores for i in again.items] == [i.scores for i in first.items]
    # Another judge model, or other contexts, invalidate the cached items.
    other = _scorer(tmp_path, embeddings, judge=judge, answerer=answerer, identity="judge=b")
    assert other.score(_cases()).from_cache == 0
    cases = _cases()
    cases[0].contexts.reverse()
    changed = _scorer(tmp_path, embeddings, judge=judge, answerer=answerer, identity="judge=b")
    assert changed.score(cases).from_cache == 1


def test_timeout_is_reported_and_retried_on_resume(
    tmp_path: Path, embeddings: LocalRagasEmbeddings
) -> None:
    slow = StubAnswerer(delay_s=5.0)
    result = _scorer(
        tmp_path, embeddings, judge=StubJudge(), answerer=slow, timeout_s=0.2, concurrency=2
    ).score(_cases())
    assert all(i.error.startswith("TimeoutError") for i in result.items)
    assert slow.max_in_flight == 2
    # The non-LLM scores are still there; nothing was cached, so a resume tries again.
    assert result.items[0].scores["id_context_recall"] == 1.0
    assert "faithfulness" not in result.items[0].scores
    retry = _scorer(tmp_path, embeddings, judge=StubJudge(), answerer=StubAnswerer()).score(
        _cases()
    )
    assert retry.from_cache == 0 and not any(i.error for i in retry.items)


def test_concurrency_is_bounded(tmp_path: Path, embeddings: LocalRagasEmbeddings) -> None:
    answerer = StubAnswerer(delay_s=0.05)
    cases = [
        RagasCase(
            c.item.model_copy(update={"id": f"{c.item.id}-{n}"}), c.contexts, c.reference_contexts
        )
        for n in range(4)
        for c in _cases()
    ]
    _scorer(tmp_path, embeddings, answerer=answerer, concurrency=3).score(cases)
    assert answerer.calls == 8 and answerer.max_in_flight == 3


@pytest.fixture
def fake_openai() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeOpenAI.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_answerer_and_judge_over_loopback(
    fake_openai: str, tmp_path: Path, embeddings: LocalRagasEmbeddings
) -> None:
    """The production wiring (the platform's chat client, `/v1/answer`'s prompt, the JSON-mode
    judge) against the STUB server (`FakeOpenAI`): same verdicts as the in-process stub judge."""
    settings = Settings(llm_base_url=fake_openai, eval_judge_model="stub-judge")
    llms = llms_from_settings(settings)
    assert judge_endpoint(settings.eval, settings.llm).base_url == fake_openai
    scorer = _scorer(tmp_path, embeddings, answerer=llms.answerer, judge=llms.judge)
    plants, jazz = scorer.score(_cases()).items
    assert not plants.error and not jazz.error, (plants.error, jazz.error)
    assert plants.response == PLANTS and jazz.response == FABRICATED
    assert (plants.scores["faithfulness"], jazz.scores["faithfulness"]) == (1.0, 0.0)
    assert jazz.scores["context_precision"] == pytest.approx(0.5)
    models = {r["model"] for r in FakeOpenAI.seen}
    assert models == {settings.llm.model, "stub-judge"}
    asked = [r for r in FakeOpenAI.seen if r["model"] == settings.llm.model]
    assert len(asked) == 2 and asked[0]["messages"][0]["content"] == ANSWER_SYSTEM_PROMPT


def test_endpoints_from_settings() -> None:
    # One definition of "configured": a base URL; a key alone is not an endpoint.
    def judge(**settings: object) -> LlmEndpoint | None:
        s = Settings(**settings)
        return judge_endpoint(s.eval, s.llm)

    assert llm_endpoint(Settings(llm_base_url=None, llm_api_key="k").llm) is None
    assert judge(llm_base_url=None, eval_judge_model="big") is None
    assert judge(llm_base_url="http://a/v1") is None  # no judge model
    endpoint = judge(
        llm_base_url="http://a/v1",
        llm_api_key="answer-key",
        eval_judge_model="big",
        eval_judge_base_url="http://b/v1",
    )
    assert endpoint is not None
    assert (endpoint.base_url, endpoint.model, endpoint.api_key) == (
        "http://b/v1",
        "big",
        "answer-key",
    )
