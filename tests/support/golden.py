"""Golden sets written to disk, as a reviewer would hand them to `rag golden import` or
`rag eval --golden`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eval.golden import GoldenItem, to_jsonl


def save_golden(items: Sequence[GoldenItem], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_jsonl(items), encoding="utf-8")
