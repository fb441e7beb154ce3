"""`rag state import`: a single host's data dir (its stores' SQLite files) copied into the state
database that RAG_STATE_URL names, so that an existing deployment scales out without embedding
anything again.

Every row is inserted only where its primary key is not there yet, in batches that each commit:
running it again copies nothing twice, and an import that was interrupted resumes where it
stopped. Each SQLite file is first brought to this release's schema (as opening it would), so
both sides have the same tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, Integer, MetaData, Table, func, inspect, select, text

from core.settings import Settings
from core.state.database import engine_for, insert_new, release, sqlite_url, store_engine
from core.state.stores import STORES

BATCH_ROWS = 2000  # rows per committed batch: an interrupted import loses at most one


@dataclass
class Imported:
    """What one table's import found and added."""

    store: str
    table: str
    rows: int  # in the data dir's file
    added: int  # not in the database before


def import_data_dir(data_dir: Path, settings: Settings) -> Iterator[Imported]:
    """Copy each store's file found in `data_dir` into `settings`' state database."""
    if settings.state.url is None:
        raise ValueError("RAG_STATE_URL names no state database to import into")
    for store in STORES:
        path = data_dir / store.sqlite_file
        if not path.exists():
            continue
        source = engine_for(sqlite_url(path), store, settings.state)
        target = store_engine(settings, store)
        try:
            yield from _copy_store(store.name, store.version_table, source, target)
        finally:
            release(source)


def _copy_store(
    name: str, version_table: str, source: Engine, target: Engine
) -> Iterator[Imported]:
    """The store's tables as the database has them (its types), filled from the file's."""
    names = [n for n in inspect(source).get_table_names() if n != version_table]
    tables = MetaData()
    tables.reflect(target, only=names)
    for table in tables.sorted_tables:
        yield _copy_table(name, table, source, target)


def _copy_table(store: str, table: Table, source: Engine, target: Engine) -> Imported:
    def count() -> int:
        with target.connect() as conn:
            return conn.execute(select(func.count()).select_from(table)).scalar_one()

    before = count()
    rows = 0
    columns = [column.name for column in table.columns]
    read = select(*(text(f'"{c}"') for c in columns)).select_from(text(f'"{table.name}"'))
    with source.connect() as reader:
        for batch in reader.execution_options(yield_per=BATCH_ROWS).execute(read).partitions():
            with target.begin() as writer:
                insert_new(writer, table, [dict(zip(columns, row, strict=True)) for row in batch])
            rows += len(batch)
    _advance_sequence(table, target)
    return Imported(store, table.name, rows, count() - before)


def _advance_sequence(table: Table, target: Engine) -> None:
    """Rows copied with their ids leave PostgreSQL's sequence behind them: the next insert would
    take an id already used."""
    keys = list(table.primary_key)
    if (
        target.dialect.name != "postgresql"
        or len(keys) != 1
        or not isinstance(keys[0].type, Integer)
    ):
        return
    with target.begin() as conn:
        conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence(:table, :column), "
                f'COALESCE((SELECT MAX("{keys[0].name}") FROM "{table.name}"), 0) + 1, false)'
            ),
            {"table": table.name, "column": keys[0].name},
        )
