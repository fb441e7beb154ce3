"""The engines of the state database, and each store's schema brought up to date when a process
first opens it.

PostgreSQL (`RAG_STATE_URL`): every store's tables in the one database, each with its own Alembic
version table, through one engine per process shared by every store; statements that wait on a
lock or run away fail after `lock_timeout` and `statement_timeout`, and a new connection gives up
after `connect_timeout`, instead of holding a worker or a request for good. SQLite (the default):
each store keeps its file in the data dir, as releases before SQLAlchemy wrote them
(`api_keys.sqlite`, ...), in WAL mode, readable by its owner only, with an engine of its own; a
file of such a release (its schema version in SQLite's `user_version`) is adopted at that
version and upgraded in place.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from core.datadir import private_dir, private_file
from core.extras import missing_extra
from core.settings import Settings, StateSettings
from core.sqlite import enable_wal
from core.state.migrate import current_revision, head_of, upgrade

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class StoreSchema:
    """A store's tables: its Alembic history and, on SQLite, its file in the data dir."""

    name: str
    sqlite_file: str

    @property
    def migrations(self) -> Path:
        return MIGRATIONS / self.name

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.name}"


def store_url(settings: Settings, store: StoreSchema) -> str:
    """The database of `store`: RAG_STATE_URL's, else its SQLite file in the data dir."""
    if settings.state.url is not None:
        return settings.state.url.get_secret_value()
    return sqlite_url(settings.data_dir / store.sqlite_file)


def store_engine(settings: Settings, store: StoreSchema) -> Engine:
    return engine_for(store_url(settings, store), store, settings.state)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


_shared: dict[str, Engine] = {}
_upgraded: set[tuple[str, str]] = set()
_guard = threading.Lock()


def engine_for(url: str, store: StoreSchema, state: StateSettings) -> Engine:
    """An engine for `url` with `store`'s schema up to date in it.

    A server's engine is the process's, shared by every store and kept for the process's life
    (its pool is the process's connections to the database). A SQLite file's belongs to the
    store that opened it and is closed with it (`release`), as a connection to a file was
    before: a data dir removed and made again is then never written through a stale handle.
    """
    if make_url(url).get_backend_name() == "sqlite":
        engine = _sqlite_engine(make_url(url))
        try:
            upgrade(engine, store.migrations, store.version_table, store.name)
        except BaseException:
            engine.dispose()
            raise
        return engine
    with _guard:
        engine = _shared.get(url)
        if engine is None:
            engine = _shared[url] = _server_engine(make_url(url), state)
        if (url, store.name) not in _upgraded:
            upgrade(engine, store.migrations, store.version_table, store.name)
            _upgraded.add((url, store.name))
    return engine


def reading(engine: Engine) -> Connection:
    """A connection for reads that need no transaction (one statement, or reads that may see
    writes between them): each statement is its own, so no BEGIN and ROLLBACK round trips go to
    a server around it. Use as a context manager."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A transaction for reads that decide writes: on SQLite it takes the file's write lock at
    BEGIN, since a transaction that read first and then upgrades to writing fails at once
    ("database is locked") when another connection wrote meanwhile, where a writer that waits
    its turn only waits. PostgreSQL's row locks (`FOR UPDATE`) do the rest."""
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        yield conn


def release(engine: Engine) -> None:
    """A store is closing: its SQLite file's connections are closed; a server's engine stays."""
    if engine.dialect.name == "sqlite":
        engine.dispose()


def _server_engine(url: URL, state: StateSettings) -> Engine:
    timeouts = (
        f"-c lock_timeout={state.lock_timeout_seconds * 1000:.0f} "
        f"-c statement_timeout={state.statement_timeout_seconds * 1000:.0f}"
    )
    try:
        return create_engine(
            url,
            pool_size=state.pool_size,
            max_overflow=state.pool_size,
            pool_pre_ping=True,
            connect_args={"options": timeouts, "connect_timeout": state.connect_timeout_seconds},
        )
    except ModuleNotFoundError as exc:  # the driver, imported by SQLAlchemy here
        raise missing_extra("postgres", "a state database in PostgreSQL", exc) from exc


def _sqlite_engine(url: URL) -> Engine:
    path = Path(url.database or "")
    private_dir(path.parent)
    private_file(path)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_conn: sqlite3.Connection, _: ConnectionPoolEntry) -> None:
        # The driver's own transaction handling would begin late and never take the write lock
        # first; transactions are begun below, as SQLAlchemy asks.
        dbapi_conn.isolation_level = None
        enable_wal(dbapi_conn)
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE when asked (a migration, `writing`): the write lock from the start, so two
        # processes opening one file never both decide to apply the same step.
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":  # `reading`: no transaction
            return
        mode = "IMMEDIATE" if options.get("sqlite_immediate") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def insert_new(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose primary key is not there yet; the others are left as they are."""
    if rows:
        conn.execute(dialect_insert(conn, table).on_conflict_do_nothing(), rows)


def upsert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert the rows, replacing the columns of those whose primary key is there already."""
    if not rows:
        return
    insert = dialect_insert(conn, table)
    keys = [column.name for column in table.primary_key]
    others = {c.name: insert.excluded[c.name] for c in table.columns if c.name not in keys}
    conn.execute(insert.on_conflict_do_update(index_elements=keys, set_=others), rows)


def dialect_insert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (both SQLite's and PostgreSQL's)."""
    return (sqlite if conn.dialect.name == "sqlite" else postgresql).insert(table)


def store_versions(settings: Settings, store: StoreSchema) -> tuple[str | None, str]:
    """(`store`'s schema revision in its database, or None where it has none; the newest this
    release knows): what `rag state current` shows. Nothing is created or upgraded."""
    url = make_url(store_url(settings, store))
    head = head_of(store.migrations)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return None, head
    engine = create_engine(url)
    try:
        return current_revision(engine, store.version_table), head
    finally:
        engine.dispose()
