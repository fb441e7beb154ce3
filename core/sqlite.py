"""SQLite stores shared by the manifest, the key store and the embedding cache, with versioned
schemas and writes that always end what they open.

Each store declares its schema as an ordered list of `Migration`s. A database records the version
it has reached in SQLite's `user_version`; opening it applies the migrations above that version,
each in its own transaction with the version bump, so a data dir written by an older release is
upgraded in place and a failed upgrade leaves it at its last complete version. Databases written
before versioning have `user_version` 0 and today's tables: migration 1 of every store is that
original schema with `IF NOT EXISTS`, so it adopts them as they are.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.datadir import private_dir, private_file


class SchemaError(RuntimeError):
    """A database this release cannot use: written by a newer release, or a broken upgrade."""


@dataclass(frozen=True)
class Migration:
    """One step of a store's schema: SQL statements, or a function given the connection (for
    steps that must look at the data). Versions count up from 1 without gaps."""

    version: int
    description: str
    apply: str | Callable[[sqlite3.Connection], None]


def _check_sequence(migrations: Sequence[Migration]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise ValueError(f"migrations must be numbered 1, 2, 3, ... in order; got {versions}")


def _statements(script: str) -> list[str]:
    """Split a script into statements: `executescript` would commit the open transaction."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in a migration: {pending.strip()[:80]!r}")
    return statements


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration], name: str) -> int:
    """Bring `conn`'s database to the last migration's version; returns that version.

    The version is read inside each step's write transaction, so processes opening the same file
    at once (the API and a worker) apply every step exactly once between them.
    """
    _check_sequence(migrations)
    latest = len(migrations)
    while True:
        conn.execute("BEGIN IMMEDIATE")
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        if current >= latest:
            conn.execute("COMMIT")
            break
        migration = migrations[current]
        try:
            if isinstance(migration.apply, str):
                for statement in _statements(migration.apply):
                    conn.execute(statement)
            else:
                migration.apply(conn)
            conn.execute(f"PRAGMA user_version = {migration.version:d}")
        except BaseException as exc:
            conn.execute("ROLLBACK")
            raise SchemaError(
                f"upgrading {name} to schema {migration.version} ({migration.description}) "
                f"failed: {exc}"
            ) from exc
        conn.execute("COMMIT")
    if current > latest:
        raise SchemaError(
            f"{name} has schema version {current}, newer than this release knows ({latest}): "
            "it was written by a newer release; upgrade this one or use another data dir"
        )
    return latest


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


class SqliteStore:
    """A WAL-mode SQLite file used from several threads through one serialized connection.

    Subclasses pass their `Migration`s; the database is migrated when the store opens.

    The connection runs in autocommit mode: a single statement is its own transaction, and
    several statements that must land together go through `transaction()`, the one place that
    opens one. It always ends what it opened (COMMIT, or ROLLBACK on any error), so one failed
    write (a value SQLite cannot encode, a busy database) never leaves the shared connection
    inside a transaction that every later write would trip over.

    The file is created readable by its owner only; SQLite gives its -wal and -shm files the
    database file's permissions.
    """

    def __init__(self, path: Path, migrations: Sequence[Migration]) -> None:
        private_dir(path.parent)
        private_file(path)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self.schema_version = migrate(self._conn, migrations, path.name)
        except BaseException:
            self._conn.close()
            raise
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
