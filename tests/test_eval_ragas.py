"""The RAGAS path, wired end to end without network.

STUBS: the judge (`StubJudge`) and the answer LLM (`stub_answerer`) are deterministic local
stand-ins for remote LLMs, which cannot run here. The judge implements ragas's own LLM interface
(`InstructorBaseRagasLLM`), so the real ragas metric code drives it: it reads the input ragas puts
in each prompt and decides by word overlap. The embeddings are the real MiniLM model.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ragas.llms.base import InstructorBaseRagasLLM

from core.embedding import Embedder
from core.llm import ANSWER_SYSTEM_PROMPT, Source, judge_endpoint, llm_endpoint
from core.settings import Settings
from eval.golden import GoldenItem
from eval.pipeline import llms_from_settings
from eval.ragas_scoring import LLM_METRICS, LocalRagasEmbeddings, RagasCase, RagasScorer
from eval.runner import Retrieved

SHIPPED = Settings()

PLANTS = (
    "Plants convert sunlight, water and carbon dioxide into glucose and oxygen in chloroplasts."
)
CHESS = "The Sicilian Defence is a chess opening that begins with the moves e4 c5."
JAZZ = "Jazz music originated in New Orleans and is known for improvisation and swing rhythms."
FABRICATED = "Penguins invented saxophones on the Moon during winter."


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 3}


def _supported(claim: str, context: str) -> bool:
    words = _words(claim)
    return bool(words) and len(words & _words(context)) / len(words) >= 0.6


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def stub_verdict(name: str, prompt: str) -> dict[str, Any]:
    """STUB judging: what a judge would answer to ragas's prompt for the response model `name`,
    decided by word overlap on the input ragas embeds at the end of its prompt."""
    data = json.loads(prompt.rsplit("input: ", 1)[1].rsplit("Output:", 1)[0])

    def verdicts(statements: list[str], key: str) -> list[dict[str, Any]]:
        return [
            {"statement": s, "reason": "stub", key: int(_supported(s, data["context"]))}
            for s in statements
        ]

    if name == "StatementGeneratorOutput":
        return {"statements": _sentences(data["answer"])}
    if name == "NLIStatementOutput":
        return {"statements": verdicts(data["statements"], "verdict")}
    if name == "AnswerRelevanceOutput":
        return {"question": data["response"], "noncommittal": 0}
    if name == "ContextPrecisionOutput":
        return {"reason": "stub", "verdict": int(_supported(data["answer"], data["context"]))}
    if name == "ContextRecallOutput":
        return {"classifications": verdicts(_sentences(data["answer"]), "attributed")}
    raise AssertionError(f"the stub judge was asked for {name}")


class StubJudge(InstructorBaseRagasLLM):
    """STUB judge: deterministic, local, word-overlap verdicts in ragas's response models."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def generate(self, prompt: str, response_model: Any) -> Any:
        return asyncio.run(self.agenerate(prompt, response_model))

    async def agenerate(self, prompt: str, response_model: Any) -> Any:
        self.calls[response_model.__name__] += 1
        return response_model.model_validate(stub_verdict(response_model.__name__, prompt))


def stub_answer(question: str, contexts: Sequence[str]) -> str:
    """STUB answering: the first context, except that it fabricates about jazz."""
    return FABRICATED if "jazz" in question.lower() else contexts[0]


def sources_in(prompt: str) -> list[tuple[str, str]]:
    """(boundary, text) of each fenced source in a grounded-answer prompt (`answer_messages`)."""
    return re.findall(r"BEGIN SOURCE (\w+) id=\S*\n(.*?)\nEND SOURCE \1", prompt, re.DOTALL)


class StubAnswerer:
    """STUB answer LLM: answers with the first context, except that it fabricates about jazz."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.in_flight = self.max_in_flight = 0
        self._delay_s = delay_s

    async def __call__(self, question: str, sources: Sequence[Source]) -> str:
        self.calls += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self._delay_s)
            return stub_answer(question, [s.text for s in sources])
        finally:
            self.in_flight -= 1


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
        tmp / "cache",
        judge=kw.pop("judge", None),
        answerer=kw.pop("answerer", None),
        embeddings=embeddings,
        **{"concurrency": SHIPPED.eval_concurrency, "timeout_s": SHIPPED.eval_timeout_s, **kw},
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


class _FakeOpenAI(BaseHTTPRequestHandler):
    """STUB server: a loopback fake of an OpenAI-compatible `/v1/chat/completions`.

    A request carrying a JSON schema (how ragas's judge asks, through instructor's JSON mode) is
    answered by `stub_verdict` for the schema's response model; any other request is an answer
    request, answered by `stub_answer` from the passages the answerer sent.
    """

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append(body)
        text = "\n".join(m["content"] for m in body["messages"])
        schema = re.search(r'"title": "(\w+Output)"', text)
        if schema:
            content = json.dumps(stub_verdict(schema.group(1), body["messages"][-1]["content"]))
        else:
            passages = [t for _, t in sources_in(text)]
            content = stub_answer(text.rsplit("Question: ", 1)[1], passages)
        reply = {
            "id": "stub",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_openai() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeOpenAI.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_openai_compatible_answerer_and_judge_over_loopback(
    fake_openai: str, tmp_path: Path, embeddings: LocalRagasEmbeddings
) -> None:
    """The production wiring (the platform's chat client, `/v1/answer`'s prompt, the JSON-mode
    judge) against the STUB server above: same verdicts as the in-process stub judge."""
    settings = Settings(llm_base_url=fake_openai, eval_judge_model="stub-judge")
    llms = llms_from_settings(settings)
    assert judge_endpoint(settings).base_url == fake_openai
    scorer = _scorer(tmp_path, embeddings, answerer=llms.answerer, judge=llms.judge)
    plants, jazz = scorer.score(_cases()).items
    assert not plants.error and not jazz.error, (plants.error, jazz.error)
    assert plants.response == PLANTS and jazz.response == FABRICATED
    assert (plants.scores["faithfulness"], jazz.scores["faithfulness"]) == (1.0, 0.0)
    assert jazz.scores["context_precision"] == pytest.approx(0.5)
    models = {r["model"] for r in _FakeOpenAI.seen}
    assert models == {settings.llm_model, "stub-judge"}
    asked = [r for r in _FakeOpenAI.seen if r["model"] == settings.llm_model]
    assert len(asked) == 2 and asked[0]["messages"][0]["content"] == ANSWER_SYSTEM_PROMPT


def test_endpoints_from_settings() -> None:
    # One definition of "configured": a base URL; a key alone is not an endpoint.
    assert llm_endpoint(Settings(llm_base_url=None, llm_api_key="k")) is None
    assert judge_endpoint(Settings(llm_base_url=None, eval_judge_model="big")) is None
    assert judge_endpoint(Settings(llm_base_url="http://a/v1")) is None  # no judge model
    judge = judge_endpoint(
        Settings(
            llm_base_url="http://a/v1",
            llm_api_key="answer-key",
            eval_judge_model="big",
            eval_judge_base_url="http://b/v1",
        )
    )
    assert judge is not None
    assert (judge.base_url, judge.model, judge.api_key) == ("http://b/v1", "big", "answer-key")
