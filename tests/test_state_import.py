"""`rag state import DATA_DIR`: a single host's SQLite stores copied into the suite's own
PostgreSQL, so that an existing deployment scales out without embedding anything again; run
twice, it copies nothing twice."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from api.auth import KeyStore
from cli.main import app
from core.embedding import EmbeddingCache
from core.manifest import (
    DocStatus,
    DocumentRecord,
    Manifest,
    RunSummary,
    generation_namespace,
)
from core.settings import Settings, get_settings
from core.types import TenantScope
from tests.support.services import postgres_url


def _single_host(data_dir: Path) -> tuple[str, str]:
    """A data dir as one host leaves it: documents (one a generation's), work in flight, a run,
    a key, cached vectors. Returns the key and the run's id."""
    settings = Settings(data_dir=data_dir)
    manifest = Manifest.open(settings)
    built = Manifest.open(settings, generation_namespace("next"))
    keys = KeyStore.open(settings)
    cache = EmbeddingCache.open(settings)
    try:
        manifest.put(
            *(
                DocumentRecord(f"d{n}.txt", "acme", f"d{n}.txt", DocStatus.INDEXED, chunk_ids=["c"])
                for n in range(2500)  # more than one batch
            )
        )
        built.put(DocumentRecord("d0.txt", "acme", "d0.txt", DocStatus.INDEXED))
        manifest.mark_queued({"d1.txt": ("acme", "task-1")})
        run_id = manifest.record_run(RunSummary(added=2500, planned=1))
        manifest.set_meta("last_scan", {"listed": 2500})
        token, _ = keys.create(TenantScope("acme"), "reader", "imported")
        cache.put_many("model@digest", {"h1": np.ones(4, dtype=np.float32)})
        return token, str(run_id)
    finally:
        for store in (manifest, built, keys, cache):
            store.close()


def test_import_copies_every_store_once_and_the_database_serves_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / "old-host"
    token, _ = _single_host(old)
    url = postgres_url(f"import_{uuid.uuid4().hex[:12]}")
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "new-host"))
    monkeypatch.setenv("RAG_STATE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        first = runner.invoke(app, ["state", "import", str(old)])
        assert first.exit_code == 0, first.output
        assert "manifest.documents: 2501 rows, 2501 new" in first.output
        assert "keys.api_keys: 1 rows, 1 new" in first.output
        again = runner.invoke(app, ["state", "import", str(old)])
        assert again.exit_code == 0, again.output
        assert "manifest.documents: 2501 rows, 0 new" in again.output  # nothing twice

        settings = Settings(data_dir=tmp_path / "new-host", state={"url": url})
        manifest = Manifest.open(settings)
        keys = KeyStore.open(settings)
        cache = EmbeddingCache.open(settings)
        try:
            assert len(manifest.all()) == 2500 and manifest.chunk_count() == 2500
            assert set(manifest.pending()) == {"d1.txt"}
            assert manifest.get_meta("last_scan") == {"listed": 2500}
            built = Manifest.open(settings, generation_namespace("next"))
            assert set(built.all()) == {"d0.txt"}
            built.close()
            assert manifest.last_run().added == 2500  # type: ignore[union-attr]
            # The runs' id sequence moved past the imported ids: a new run gets a new one.
            assert manifest.record_run(RunSummary()) == 2
            principal = keys.verify(token)
            assert principal is not None and principal.tenant_id == "acme"
            assert set(cache.get_many("model@digest", ["h1"])) == {"h1"}
        finally:
            for store in (manifest, keys, cache):
                store.close()
    finally:
        get_settings.cache_clear()


def test_import_needs_a_database_and_a_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("RAG_STATE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        refused = runner.invoke(app, ["state", "import", str(tmp_path)])
        assert refused.exit_code == 2 and "RAG_STATE_URL" in refused.output
        monkeypatch.setenv("RAG_STATE_URL", postgres_url(f"import_{uuid.uuid4().hex[:12]}"))
        get_settings.cache_clear()
        missing = runner.invoke(app, ["state", "import", str(tmp_path / "nope")])
        assert missing.exit_code == 2 and "is not a folder" in missing.output
        empty = runner.invoke(app, ["state", "import", str(tmp_path)])
        assert empty.exit_code == 2 and "holds no state store" in empty.output
    finally:
        get_settings.cache_clear()
