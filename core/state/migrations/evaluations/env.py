"""Alembic's entry to the evaluation runs' history (core/state/migrate.py runs it)."""

from core.state.migrate import run_migrations

run_migrations()
