"""The audit trail: one JSON line per search or answer, and one per refused key.

Who asked (key id and tenant, never the key), what (route, mode, top_k, the filter fields, the
query's SHA-256 and length, or its text when `audit_log_queries` is on) and how it went (status,
hits returned). Refused keys are logged with the client address and the key id the token claims,
so enumeration attempts show up. Lines go to `audit_log_path` (append-only, one writer lock per
process) and to the `rag.audit` logger for whatever ships logs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("rag.audit")


class AuditLog:
    def __init__(self, path: Path | None, include_queries: bool = False) -> None:
        self._path = path
        self._include_queries = include_queries
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def search(
        self,
        *,
        route: str,
        key_id: str,
        tenant_id: str,
        query: str,
        mode: str,
        top_k: int,
        filter_fields: list[str],
        status: int,
        hits: int,
    ) -> None:
        entry: dict[str, Any] = {
            "event": route,
            "key_id": key_id,
            "tenant_id": tenant_id,
            "mode": mode,
            "top_k": top_k,
            "filters": filter_fields,
            "query_sha256": hashlib.sha256(query.encode()).hexdigest(),
            "query_chars": len(query),
            "status": status,
            "hits": hits,
        }
        if self._include_queries:
            entry["query"] = query
        self._write(entry)

    def refused(self, *, client: str, claimed_key_id: str, path: str) -> None:
        self._write(
            {
                "event": "auth_refused",
                "client": client,
                "claimed_key_id": claimed_key_id,
                "path": path,
            }
        )

    def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"ts": round(time.time(), 3), **entry}, ensure_ascii=False)
        log.info(line)
        if self._path is not None:
            with self._lock, self._path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")


def read_audit_log(path: Path) -> list[dict[str, Any]]:
    """Every entry, oldest first (for tests and `rag` tooling)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
