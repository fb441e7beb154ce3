"""SQLite connections shared by the manifest, the key store and the embedding cache."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.datadir import private_dir, private_file


class SqliteStore:
    """A WAL-mode SQLite file used from several threads through one serialized connection.

    The connection runs in autocommit mode: a single statement is its own transaction, and
    several statements that must land together go through `transaction()`, the one place that
    opens one. It always ends what it opened (COMMIT, or ROLLBACK on any error), so one failed
    write (a value SQLite cannot encode, a busy database) never leaves the shared connection
    inside a transaction that every later write would trip over.

    The file is created readable by its owner only; SQLite gives its -wal and -shm files the
    database file's permissions.
    """

    def __init__(self, path: Path, schema: str) -> None:
        private_dir(path.parent)
        private_file(path)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(schema)
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """`BEGIN IMMEDIATE` under the store's lock; COMMIT when the block ends, else ROLLBACK."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._conn.close()
