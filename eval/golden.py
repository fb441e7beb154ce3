"""The golden set: questions with a reference answer and/or the documents that answer them.

Stored as JSONL, one item a line, so a reviewer can edit, reorder or delete candidates by hand.
An item without a reference answer is retrieval-only: RAGAS scores its contexts against the
relevant documents, and skips the metrics that need an answer to compare with.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from eval.beir import BeirDataset

T = TypeVar("T")


class GoldenItem(BaseModel):
    id: str = Field(min_length=1)
    question: str = Field(min_length=1)
    reference: str | None = None  # the reference answer
    relevant_doc_ids: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    # Generated candidates start pending; a tenant's runs score only approved items.
    review: Literal["pending", "approved"] = "approved"


class GoldenSetError(ValueError):
    """A golden file that cannot be used; the message names the line."""


def parse_golden(data: bytes, name: str) -> list[GoldenItem]:
    """Items from a JSONL file's bytes; text that is not UTF-8, or a bad or duplicate line, is an
    error naming `name:line`. What the API's import and `rag golden import` both read.

    Lines end at "\n" only (a "\r" before it is JSON whitespace): `str.splitlines` would also
    break at U+2028, U+2029 and U+0085, which are valid inside a JSON string.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise GoldenSetError(f"{name}:{line}: not UTF-8 text ({exc.reason})") from None
    items: list[GoldenItem] = []
    seen: set[str] = set()
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            item = GoldenItem.model_validate_json(line)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise GoldenSetError(
                f"{name}:{n}: {where + ': ' if where else ''}{error['msg']}"
            ) from None
        if item.id in seen:
            raise GoldenSetError(f"{name}:{n}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    return items


def load_golden(path: Path) -> list[GoldenItem]:
    return parse_golden(path.read_bytes(), str(path))


def to_jsonl(items: Iterable[GoldenItem]) -> str:
    return "".join(json.dumps(i.model_dump(), ensure_ascii=False) + "\n" for i in items)


def golden_from_qrels(dataset: BeirDataset) -> list[GoldenItem]:
    """A retrieval-only golden set: each judged query with its relevant documents."""
    return [
        GoldenItem(
            id=qid,
            question=text,
            relevant_doc_ids=[d for d, g in dataset.qrels[qid].items() if g > 0],
            tags={"source": "qrels"},
        )
        for qid, text in dataset.judged_queries.items()
    ]


def sample(items: Sequence[T], n: int | None, seed: int = 0) -> list[T]:
    """The same `n` items every run (seeded), in their original order, so runs compare."""
    if n is None or n >= len(items):
        return list(items)
    keep = set(random.Random(seed).sample(range(len(items)), n))
    return [item for i, item in enumerate(items) if i in keep]
