"""Deterministic local stand-ins for the remote LLMs of an evaluation (which cannot run here).

STUBS: the judge (`StubJudge`) implements ragas's own LLM interface (`InstructorBaseRagasLLM`), so
the real ragas metric code drives it: it reads the input ragas puts in each prompt and decides by
word overlap. The answerer (`StubAnswerer`) answers with the first context, except that it
fabricates about jazz. `FakeOpenAI` serves both over loopback as an OpenAI-compatible endpoint.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

from ragas.llms.base import InstructorBaseRagasLLM

from core.llm import Source

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


class FakeOpenAI(BaseHTTPRequestHandler):
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
