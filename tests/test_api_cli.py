"""`rag keys create|list|revoke` against a real key store and manifest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.auth import KeyStore
from cli.keys import keys_app
from core.manifest import DocStatus, DocumentRecord, Manifest
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
    created = runner.invoke(
        app, ["keys", "create", "acme", "--role", "admin", "--label", "ops", "--force"]
    )
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


def test_a_key_for_a_tenant_without_documents_needs_force(settings: Settings) -> None:
    """A mistyped tenant (`rag keys create defualt`) got a key whose searches all answered 200
    with nothing; now it is refused with the tenants that have documents, unless --force."""
    app = typer.Typer(rich_markup_mode=None)  # errors as plain text, as `rag` prints them
    app.add_typer(keys_app, name="keys")
    runner = CliRunner()
    empty = runner.invoke(app, ["keys", "create", "acme"])
    assert empty.exit_code == 2 and "(known tenants: none)" in empty.output, empty.output
    assert not (settings.data_dir / "manifest.sqlite").exists()  # asking does not make one

    manifest = Manifest.open(settings)
    manifest.put(
        DocumentRecord("tenants/acme/a.txt", "acme", "a.txt", DocStatus.INDEXED),
        DocumentRecord("tenants/globex/b.txt", "globex", "b.txt", DocStatus.FAILED),
        DocumentRecord("tenants/gone/c.txt", "gone", "c.txt", DocStatus.DELETED),
    )
    manifest.mark_queued({"tenants/initech/d.txt": ("initech", "task-1")})
    manifest.close()
    for tenant in ("defualt", "gone"):
        refused = runner.invoke(app, ["keys", "create", tenant])
        assert refused.exit_code == 2, refused.output
        message = " ".join(refused.output.split())
        assert (
            f"no documents for tenant '{tenant}' (known tenants: acme, globex, initech); "
            "pass --force to create a key for it anyway"
        ) in message, message
    store = KeyStore.open(settings)
    assert store.list() == []
    assert runner.invoke(app, ["keys", "create", "acme"]).exit_code == 0
    assert runner.invoke(app, ["keys", "create", "initech"]).exit_code == 0
    assert runner.invoke(app, ["keys", "create", "defualt", "--force"]).exit_code == 0
    assert sorted(k.tenant_id for k in store.list()) == ["acme", "defualt", "initech"]
    store.close()
