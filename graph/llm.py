"""Entity and relation extraction by an LLM behind any OpenAI-compatible chat endpoint.

The model's answer is untrusted input: it is parsed as JSON and validated with pydantic, and any
failure (HTTP error, timeout, oversized reply, invalid JSON, wrong shape) is logged and yields an
empty extraction for that chunk, so a misbehaving model never stops ingestion. The endpoint is
reached through the platform's one chat client, `core.llm.ChatClient`.
"""

from __future__ import annotations

import json
import logging
import re

from pydantic import BaseModel, Field, ValidationError

from core.llm import ChatClient, LlmError
from graph.extract import Entity, Extraction, Relation, make_extraction, normalise_key

log = logging.getLogger(__name__)

_PROMPT = (
    "Extract the named entities (people, organisations, places, products, genes, proteins, "
    "diseases, chemicals, identifiers) and the relations between them stated in the user's text. "
    'Answer with JSON only: {"entities": [{"name": str, "type": str}], '
    '"relations": [{"source": entity name, "target": entity name, "type": str}]}.'
)
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")
_TYPE_SPLIT = re.compile(r"[\W_]+")


class _LlmEntity(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(default="entity", max_length=50)


class _LlmRelation(BaseModel):
    source: str = Field(min_length=1, max_length=200)
    target: str = Field(min_length=1, max_length=200)
    type: str = Field(default="related_to", max_length=50)


class _LlmAnswer(BaseModel):
    entities: list[_LlmEntity] = Field(max_length=500)
    relations: list[_LlmRelation] = Field(default_factory=list, max_length=1000)


def _label(text: str, default: str) -> str:
    """Types as snake_case labels: `Works For` and `works-for` are one relation type."""
    return "_".join(_TYPE_SPLIT.split(text.strip().casefold())).strip("_") or default


class LlmExtractor:
    """One chat completion per chunk, at temperature 0, asking for a JSON object."""

    def __init__(self, client: ChatClient) -> None:
        self._client = client
        self.failures = 0

    def extract(self, chunk_text: str) -> Extraction:
        try:
            answer = self._ask(chunk_text)
        except (LlmError, ValueError) as exc:  # ValidationError, JSONDecodeError
            self.failures += 1
            log.warning("graph extraction skipped a chunk: %s", _brief(exc))
            return Extraction([], [])
        entities = [
            Entity(e.name.strip(), normalise_key(e.name), _label(e.type, "entity"))
            for e in answer.entities
        ]
        # A relation may name an entity the model did not list; listed ones keep their type.
        entities += [
            Entity(name.strip(), normalise_key(name), "entity")
            for r in answer.relations
            for name in (r.source, r.target)
        ]
        relations = [
            Relation(
                normalise_key(r.source), normalise_key(r.target), _label(r.type, "related_to"), 1.0
            )
            for r in answer.relations
        ]
        return make_extraction(entities, relations)

    def _ask(self, chunk_text: str) -> _LlmAnswer:
        content = self._client.complete(
            [{"role": "system", "content": _PROMPT}, {"role": "user", "content": chunk_text}],
            json_mode=True,
        )
        return _LlmAnswer.model_validate(json.loads(_FENCE.sub("", content.strip())))


def _brief(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return f"invalid answer ({exc.error_count()} errors: {exc.errors()[0]['msg']})"
    return f"{type(exc).__name__}: {exc}"[:300]
