"""Untrusted text that must reach UTF-8 sinks: the engine binding, SQLite, JSON responses, logs.

Python strings may hold lone UTF-16 surrogates (a JSON body's `"\\ud800"` parses into one), which
no UTF-8 encoder accepts: the engine binding, SQLite and the response encoder all raise on them.
Inputs are refused with `utf8_error`'s reason; text echoed back or logged goes through `printable`.
"""

from __future__ import annotations


def utf8_error(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8, or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("utf-8", "backslashreplace").decode()
        return f"holds {bad} at {exc.start}, which cannot be encoded as UTF-8 (a lone surrogate)"
    return None


def printable(text: str) -> str:
    """`text` with anything UTF-8 cannot encode written as a `\\udXXX` escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
