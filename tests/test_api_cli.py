"""`rag keys create|list|revoke` against a real key store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.auth import KeyStore
from api.cli import keys_app
from core.settings import Settings, get_settings


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_keys_are_created_listed_and_revoked(settings: Settings) -> None:
    runner = CliRunner()
    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    created = runner.invoke(app, ["keys", "create", "acme", "--role", "admin", "--label", "ops"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    store = KeyStore.open(settings)
    principal = store.verify(key)
    assert principal is not None
    assert (principal.tenant_id, principal.role) == ("acme", "admin")

    listed = runner.invoke(app, ["keys", "list"])
    assert principal.key_id in listed.output and "ops" in listed.output
    assert key.split("_", 2)[2] not in listed.output  # the secret may itself hold "_"

    assert runner.invoke(app, ["keys", "revoke", principal.key_id]).exit_code == 0
    assert store.verify(key) is None
    assert runner.invoke(app, ["keys", "revoke", principal.key_id]).exit_code == 1
    store.close()


@pytest.mark.parametrize("args", [["acme", "--role", "root"], ["../acme"], ["*"]])
def test_bad_tenants_and_roles_are_refused(settings: Settings, args: list[str]) -> None:
    app = typer.Typer()
    app.add_typer(keys_app, name="keys")
    result = CliRunner().invoke(app, ["keys", "create", *args])
    assert result.exit_code == 2
    store = KeyStore.open(settings)
    assert store.list() == []
    store.close()
