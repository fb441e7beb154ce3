"""Bring a store's tables to its Alembic history's head, once, whoever opens the database first.

The upgrade runs in one transaction that first takes the database's write lock (SQLite:
`BEGIN IMMEDIATE`; PostgreSQL: a transaction-scoped advisory lock named after the store), so two
processes starting at once apply each step once between them. A SQLite file written before
Alembic (its version in `user_version`, one step per revision of the same number) is stamped at
that revision first. A database at a revision this release does not know was written by a newer
release: it is refused, untouched.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from core.sqlite import SchemaError

log = logging.getLogger(__name__)


def upgrade(engine: Engine, migrations: Path, version_table: str, name: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    script = ScriptDirectory.from_config(config)
    # Alembic's own lines ("Context impl SQLiteImpl.", from the first look at the version
    # table on) tell an operator nothing; one line below says what changed.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    with engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
        _lock(conn, version_table)
        context = MigrationContext.configure(conn, opts={"version_table": version_table})
        current = context.get_current_revision()
        if current is None:
            current = _adopt(conn, script, context)
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise SchemaError(
                f"the {name} store is at schema {current}, newer than this release knows "
                f"({script.get_current_head()}): it was written by a newer release; upgrade this "
                "one or use another database"
            )
        head = script.get_current_head()
        if current == head:
            return
        config.attributes.update(connection=conn, version_table=version_table)
        try:
            command.upgrade(config, "head")
        except Exception as exc:
            raise SchemaError(f"upgrading the {name} store failed: {exc}") from exc
        log.info("the %s store's schema: %s -> %s", name, current or "new", head)
        if conn.dialect.name == "sqlite":
            # What a release before Alembic reads: it refuses a file of a newer schema than its.
            steps = len(list(script.walk_revisions()))
            conn.exec_driver_sql(f"PRAGMA user_version = {steps:d}")


def run_migrations() -> None:
    """The body of every store's `env.py`: upgrade on the connection `upgrade` holds, inside its
    transaction (so the lock it took covers every step)."""
    from alembic import context

    attributes = context.config.attributes
    context.configure(
        connection=attributes["connection"],
        version_table=attributes["version_table"],
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _lock(conn: Connection, version_table: str) -> None:
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.sha256(version_table.encode()).digest()[:8], "big", signed=True
        )
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _adopt(conn: Connection, script: ScriptDirectory, context: MigrationContext) -> str | None:
    """A SQLite file of a release before Alembic: the revision its `user_version` stands for."""
    if conn.dialect.name != "sqlite":
        return None
    version = conn.exec_driver_sql("PRAGMA user_version").scalar() or 0
    if version == 0:
        return None  # new, or written before versions: the first step adopts its tables
    revisions = list(reversed(list(script.walk_revisions())))  # base first
    if version > len(revisions):
        raise SchemaError(
            f"schema version {version} is newer than this release knows ({len(revisions)}): it "
            "was written by a newer release; upgrade this one or use another data dir"
        )
    revision = revisions[version - 1].revision
    context.stamp(script, revision)
    return revision


def head_of(migrations: Path) -> str:
    """The newest revision of a store's history: what this release upgrades it to."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    return ScriptDirectory.from_config(config).get_current_head() or ""


def current_revision(engine: Engine, version_table: str) -> str | None:
    """The revision a database's store is at (None: it has none yet), read without writing."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": version_table})
        return context.get_current_revision()
