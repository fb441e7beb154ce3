"""The audit trail: one JSON line per search or answer, and one per refused key.

Who asked (key id and tenant, never the key), what (route, mode, top_k, the filter fields, the
query's SHA-256 and length, or its text when `audit_log_queries` is on) and how it went (status,
hits returned). Refused keys are logged with the client address and the key id the token claims,
so enumeration attempts show up. Lines go to `audit_log_path` (append-only, one writer lock per
process) and to the `rag.audit` logger for whatever ships logs.

Nothing a client sends is copied into a line unbounded, since a log that grows by what strangers
write is a disk anyone can fill: a long path or filter field name is cut and carries the SHA-256
of the whole, and at most `refusals_per_minute` refusals per client are written in each minute;
the rest are counted and reported in one `auth_refused_suppressed` line per client when the
next minute's first refusal arrives.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from core.text import printable

log = logging.getLogger("rag.audit")

MAX_LOGGED_CHARS = 128  # of a path or a filter field name; longer ones are cut and hashed
MAX_LOGGED_FILTERS = 16  # field names per line; `filter_count` says how many there were
REFUSAL_WINDOW_SECONDS = 60
_MAX_TRACKED_CLIENTS = 10_000  # clients counted per window; past it they share one count
_OTHER_CLIENTS = "*"


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def bounded(text: str) -> str:
    """`text` if it is short, else its head and the SHA-256 of all of it."""
    if len(text) <= MAX_LOGGED_CHARS:
        return text
    return f"{text[: MAX_LOGGED_CHARS - 80]}…sha256:{_sha256(text)}"


class AuditLog:
    def __init__(self, path: Path | None, include_queries: bool, refusals_per_minute: int) -> None:
        self._path = path
        self._include_queries = include_queries
        self._refusals_per_window = refusals_per_minute
        self._lock = threading.Lock()
        self._window = 0  # the minute (since the epoch) that `_refusals` counts
        self._refusals: dict[str, int] = {}
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
            "filters": [bounded(f) for f in filter_fields[:MAX_LOGGED_FILTERS]],
            "filter_count": len(filter_fields),
            "query_sha256": _sha256(query),
            "query_chars": len(query),
            "status": status,
            "hits": hits,
        }
        if self._include_queries:
            entry["query"] = query
        self._write(entry)

    def refused(self, *, client: str, claimed_key_id: str, path: str) -> None:
        """A refused key, unless this client has used up its lines for the current minute."""
        if not self._admit_refusal(bounded(client), time.time()):
            return
        entry: dict[str, Any] = {
            "event": "auth_refused",
            "client": bounded(client),
            "claimed_key_id": bounded(claimed_key_id),
            "path": bounded(path),
        }
        if len(path) > MAX_LOGGED_CHARS:
            entry["path_chars"] = len(path)
        self._write(entry)

    def _admit_refusal(self, client: str, now: float) -> bool:
        window = int(now // REFUSAL_WINDOW_SECONDS)
        with self._lock:
            if window != self._window:
                ended, self._refusals, self._window = self._refusals, {}, window
            else:
                ended = {}
            if client not in self._refusals and len(self._refusals) >= _MAX_TRACKED_CLIENTS:
                client = _OTHER_CLIENTS
            seen = self._refusals[client] = self._refusals.get(client, 0) + 1
        for other, count in ended.items():
            written = 0 if other == _OTHER_CLIENTS else min(count, self._refusals_per_window)
            if count > written:
                self._write(
                    {
                        "event": "auth_refused_suppressed",
                        "client": other,
                        "suppressed": count - written,
                        "window_seconds": REFUSAL_WINDOW_SECONDS,
                    }
                )
        return seen <= self._refusals_per_window and client != _OTHER_CLIENTS

    def _write(self, entry: dict[str, Any]) -> None:
        # `printable` turns any lone surrogate into its JSON escape, so the line stays valid JSON.
        line = printable(json.dumps({"ts": round(time.time(), 3), **entry}, ensure_ascii=False))
        log.info(line)
        if self._path is not None:
            with self._lock, self._path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
