"""What every SQLite file of the platform shares: its switch to WAL, and the error a database
this release cannot use raises. The stores themselves are in core/state (SQLAlchemy, Alembic)."""

from __future__ import annotations

import sqlite3
import time


class SchemaError(RuntimeError):
    """A database this release cannot use: written by a newer release, or a broken upgrade."""


def enable_wal(conn: sqlite3.Connection, wait_seconds: float = 30.0) -> None:
    """Switch a database to WAL, once for all its users (the mode is kept in the file). The
    switch needs the file to itself and SQLite does not wait for that (no busy handler), so
    processes opening a database together (the API and a worker on an old data dir, first uses
    of a new file) retry until the first one has done it; meanwhile SQLite may answer "database
    is locked" or, while another connection sets a new file up, "disk I/O error"."""
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            transient = "locked" in str(exc) or "disk I/O error" in str(exc)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
