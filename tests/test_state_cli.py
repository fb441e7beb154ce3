"""`rag state current` reads each store's schema without creating anything; `rag state upgrade`
brings them all to this release's, on either backend."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import app
from core.settings import Settings, get_settings
from core.state.migrate import head_of
from core.state.stores import STORES


def test_state_current_and_upgrade(
    state_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(state_settings.data_dir))
    if state_settings.state.url is not None:
        monkeypatch.setenv("RAG_STATE_URL", state_settings.state.url.get_secret_value())
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        before = runner.invoke(app, ["state", "current"])
        assert before.exit_code == 0, before.output
        for store in STORES:
            assert f"{store.name}: none (upgrade to {head_of(store.migrations)})" in before.output
        assert not state_settings.data_dir.exists()  # reading made nothing
        upgraded = runner.invoke(app, ["state", "upgrade"])
        assert upgraded.exit_code == 0, upgraded.output
        after = runner.invoke(app, ["state", "current"]).output
        for store in STORES:
            assert f"{store.name}: {head_of(store.migrations)} (up to date)" in after
        assert "secret-pw" not in before.output + after  # the password is never shown
    finally:
        get_settings.cache_clear()
