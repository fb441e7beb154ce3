"""Secrets the platform makes for itself, once for every process and host that shares its state.

The first writer wins: a secret is inserted only where none is stored under its name, then read
back, so processes asking at once for a secret that does not exist yet all get the one that was
stored, whole (a row is written in one statement, never seen half-written).
"""

from __future__ import annotations

from sqlalchemy import Column, MetaData, Table, Text, select

from core.settings import Settings
from core.state.database import insert_new, release, store_engine
from core.state.stores import SECRETS

_SECRETS = Table(
    "secrets",
    MetaData(),
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)


def stored_secret(settings: Settings, name: str, candidate: str) -> str:
    """The secret stored under `name`; `candidate` becomes it if none is stored yet."""
    engine = store_engine(settings, SECRETS)
    try:
        with engine.begin() as conn:
            insert_new(conn, _SECRETS, [{"name": name, "value": candidate}])
            query = select(_SECRETS.c.value).where(_SECRETS.c.name == name)
            return conn.execute(query).scalar_one()
    finally:
        release(engine)
