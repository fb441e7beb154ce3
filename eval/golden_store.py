"""Each tenant's golden set, kept by the platform beside the manifest (`data_dir/golden.sqlite`).

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
from pathlib import Path
from typing import Any, Literal

from core.index import ChunkIndex
from core.settings import Settings
from core.sqlite import Migration, SqliteStore
from core.types import TenantScope
from eval.golden import GoldenItem, sample
from eval.llm import QuestionWriter, bounded_map

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS golden (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    item TEXT NOT NULL,
    review TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (tenant, id)
);
"""
_MIGRATIONS = [Migration(1, "golden items per tenant", _SCHEMA)]
Review = Literal["pending", "approved"]


def golden_path(settings: Settings) -> Path:
    return settings.data_dir / "golden.sqlite"


class GoldenStore(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path, _MIGRATIONS)

    @classmethod
    def open(cls, settings: Settings) -> GoldenStore:
        return cls(golden_path(settings))

    def put(self, tenant: str, items: Iterable[GoldenItem]) -> int:
        """Insert or replace items by id; returns how many were written."""
        now = time.time()
        rows = [(tenant, i.id, i.model_dump_json(), i.review, now) for i in items]
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO golden VALUES (?, ?, ?, ?, ?)", rows)
        return len(rows)

    def items(self, tenant: str, review: Review | None = None) -> list[GoldenItem]:
        sql, args = "SELECT item FROM golden WHERE tenant = ?", [tenant]
        if review is not None:
            sql, args = sql + " AND review = ?", [*args, review]
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY id", args).fetchall()
        return [GoldenItem.model_validate_json(r[0]) for r in rows]

    def get(self, tenant: str, item_id: str) -> GoldenItem | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT item FROM golden WHERE tenant = ? AND id = ?", (tenant, item_id)
            ).fetchone()
        return GoldenItem.model_validate_json(row[0]) if row else None

    def update(self, tenant: str, item_id: str, changes: dict[str, Any]) -> GoldenItem | None:
        """The item with `changes` applied and validated, or None when there is no such item."""
        item = self.get(tenant, item_id)
        if item is None:
            return None
        updated = GoldenItem.model_validate({**item.model_dump(), **changes, "id": item_id})
        self.put(tenant, [updated])
        return updated

    def delete(self, tenant: str, item_ids: Sequence[str]) -> int:
        with self._lock:
            cur = self._conn.executemany(
                "DELETE FROM golden WHERE tenant = ? AND id = ?", [(tenant, i) for i in item_ids]
            )
        return cur.rowcount

    def tenants(self) -> list[str]:
        """Tenants with at least one approved item: those the nightly run evaluates."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT tenant FROM golden WHERE review = 'approved' ORDER BY tenant"
            ).fetchall()
        return [r[0] for r in rows]


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
