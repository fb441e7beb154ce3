"""Alembic's entry to the golden sets' history (core/state/migrate.py runs it)."""

from core.state.migrate import run_migrations

run_migrations()
