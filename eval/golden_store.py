"""Each tenant's golden set, in the state database (by default `data_dir/golden.sqlite`).

Items are imported (JSONL), generated from the tenant's own indexed chunks by the configured LLM
(as `pending` candidates), reviewed (approved, edited, deleted) and exported again; a tenant's
evaluation runs score its approved items. Every call names its tenant, so no call reaches
another tenant's set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import Column, Double, Engine, MetaData, Table, Text, delete, select

from core.index import ChunkIndex
from core.settings import Settings
from core.state.database import reading, release, store_engine, upsert
from core.state.stores import GOLDEN
from core.types import TenantScope
from eval.golden import GoldenItem, sample
from eval.llm import QuestionWriter, bounded_map

log = logging.getLogger(__name__)

_GOLDEN = Table(
    "golden",
    MetaData(),
    Column("tenant", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("item", Text, nullable=False),
    Column("review", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)
Review = Literal["pending", "approved"]


class GoldenStore:
    """In the state database: imported on one host, evaluated by a worker on another."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, settings: Settings) -> GoldenStore:
        return cls(store_engine(settings, GOLDEN))

    def put(self, tenant: str, items: Iterable[GoldenItem]) -> int:
        """Insert or replace items by id; returns how many were written."""
        now = time.time()
        rows = [
            {
                "tenant": tenant,
                "id": i.id,
                "item": i.model_dump_json(),
                "review": i.review,
                "updated_at": now,
            }
            for i in items
        ]
        with self._engine.begin() as conn:
            upsert(conn, _GOLDEN, rows)
        return len(rows)

    def items(self, tenant: str, review: Review | None = None) -> list[GoldenItem]:
        golden = _GOLDEN.c
        query = select(golden.item).where(golden.tenant == tenant).order_by(golden.id)
        if review is not None:
            query = query.where(golden.review == review)
        with reading(self._engine) as conn:
            return [GoldenItem.model_validate_json(item) for (item,) in conn.execute(query)]

    def get(self, tenant: str, item_id: str) -> GoldenItem | None:
        golden = _GOLDEN.c
        query = select(golden.item).where(golden.tenant == tenant, golden.id == item_id)
        with reading(self._engine) as conn:
            item = conn.execute(query).scalar()
        return GoldenItem.model_validate_json(item) if item is not None else None

    def update(self, tenant: str, item_id: str, changes: dict[str, Any]) -> GoldenItem | None:
        """The item with `changes` applied and validated, or None when there is no such item."""
        item = self.get(tenant, item_id)
        if item is None:
            return None
        updated = GoldenItem.model_validate({**item.model_dump(), **changes, "id": item_id})
        self.put(tenant, [updated])
        return updated

    def delete(self, tenant: str, item_ids: Sequence[str]) -> int:
        golden = _GOLDEN.c
        query = delete(_GOLDEN).where(golden.tenant == tenant, golden.id.in_(list(item_ids)))
        with self._engine.begin() as conn:
            return conn.execute(query).rowcount

    def tenants(self) -> list[str]:
        """Tenants with at least one approved item: those the nightly run evaluates."""
        golden = _GOLDEN.c
        query = (
            select(golden.tenant).where(golden.review == "approved").distinct().order_by("tenant")
        )
        with reading(self._engine) as conn:
            return [tenant for (tenant,) in conn.execute(query)]

    def close(self) -> None:
        release(self._engine)


def generate_candidates(
    index: ChunkIndex,
    tenant: str,
    n: int,
    writer: QuestionWriter,
    concurrency: int,
    timeout_s: float,
) -> list[GoldenItem]:
    """A seeded sample of `n` of the tenant's chunks, each turned by the LLM into a question and
    reference answer about its document, tagged pending for review.

    A chunk the LLM fails on is logged and left out; the rest are still returned.
    """
    chunks = sorted(index.scroll(TenantScope(tenant), ["doc_id", "text", "doc_type"]))
    picked = sample(chunks, n)
    replies = asyncio.run(
        bounded_map(writer, [str(p.get("text", "")) for _, p in picked], concurrency, timeout_s)
    )
    items = []
    for (point_id, payload), reply in zip(picked, replies, strict=True):
        if isinstance(reply, BaseException):
            log.warning("no question for chunk %s: %s", point_id, reply)
            continue
        question, answer = reply
        items.append(
            GoldenItem(
                id=f"gen-{point_id[:12]}",
                question=question,
                reference=answer,
                relevant_doc_ids=[str(payload.get("doc_id", ""))],
                tags={
                    "source": "llm",
                    "doc_type": str(payload.get("doc_type", "")),
                    "review": "pending",
                },
                review="pending",
            )
        )
    return items
