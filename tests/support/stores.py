"""The platform's stores opened on a given database, as `open(settings)` opens them."""

from __future__ import annotations

from pathlib import Path

from api.auth import KeyStore
from core.settings import StateSettings
from core.state.database import engine_for, sqlite_url
from core.state.stores import KEYS


def key_store(target: Path | str) -> KeyStore:
    """A key store on a SQLite file (a path) or on a database (a SQLAlchemy URL)."""
    url = sqlite_url(target) if isinstance(target, Path) else target
    return KeyStore(engine_for(url, KEYS, StateSettings()))
