"""`rag status` and `/v1/status` are one read model: the same numbers under the same names.

They disagreed: `rag status` printed the vector index's figures as the last build left them
(`0 of 3 vectors indexed`) while `/v1/status` counted the tenant's chunks in the live index
(`index_chunks: 8`), the API listed `"legs": ["graph"]`, and the last run read
`+0 ~1 -1 =0 !0`. Real corpus, real index (its vector index built), real app and CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from core.embedding import Embedder
from core.settings import get_settings
from core.types import TenantScope
from ingest.bucket import LocalBucket
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, EveryChunkLeg, prepare_runtime, running_app
from tests.support.documents import make_text

OPERATOR = {"X-API-Key": ADMIN_KEY}


def _cli_status(tmp: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp / "data"))
    monkeypatch.setenv("RAG_BUCKET_URL", str(tmp / "bucket"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["status", *args])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return result.stdout


def _figures(status: dict[str, Any]) -> dict[str, Any]:
    """What both must agree on: documents per state, chunks, the vector index, the last run."""
    return {
        "documents": status["documents"],
        "index_chunks": status["index_chunks"],
        "index": {k: status["index"][k] for k in ("chunks", "indexed_chunks", "indexed_percent")},
        "last_run": status["last_run"],
        "held_deletes": status["held_deletes"],
    }


def test_the_cli_and_the_api_show_the_same_status(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, keys = prepare_runtime(tmp_path, embedder, index_optimize_min_unindexed=1)
    bucket = tmp_path / "bucket"
    with Platform(runtime) as platform:  # the vector index built over the whole corpus
        assert platform.ingestion_of(LocalBucket(bucket)).build_vector_index()
    # Then documents change, as they do under `rag up` between two builds.
    (bucket / "tenants/acme/fox.txt").write_bytes(make_text(["Foxes sleep in dens by day."]))
    (bucket / "tenants/acme/notes.html").unlink()
    (bucket / "tenants/acme/otters.txt").write_bytes(
        make_text(["Otters float on their backs.", "They hold hands while they sleep."])
    )
    with Platform(runtime) as platform:
        run = platform.ingestion_of(LocalBucket(bucket)).run()
    assert (run.added, run.modified, run.deleted, run.failed) == (1, 1, 1, 0)
    with running_app(runtime, keys, extra_legs=[EveryChunkLeg(runtime)]) as env:
        api = env.client.get("/v1/status", params={"tenant": "acme"}, headers=OPERATOR).json()
        index = env.runtime.index
        truth = {
            "acme": index.count(TenantScope("acme")),
            "all": index.count(),
            "indexed": index.vector_status()["indexed_vectors"],
        }
        tenant_view = env.client.get("/v1/status", headers=env.auth("acme")).json()
    cli = json.loads(_cli_status(tmp_path, monkeypatch, "--tenant", "acme", "--json"))
    assert _figures(cli) == _figures(api)
    assert api["documents"] == {"indexed": 4, "deleted": 1}
    assert api["index_chunks"] == truth["acme"]  # and both are the index's own counts
    assert api["index"]["chunks"] == truth["all"] > api["index_chunks"]
    assert 0 < api["index"]["indexed_chunks"] == truth["indexed"] <= truth["all"]
    last = api["last_run"]
    assert {k: last[k] for k in ("added", "modified", "deleted", "failed")} == {
        "added": 1,
        "modified": 1,
        "deleted": 1,
        "failed": 0,
    }
    # The search modes this server answers, by the name a request gives them.
    assert api["search_modes"] == ["hybrid", "dense", "bm25", "graph"] and "legs" not in api
    # A tenant's key sees its own numbers, and the whole index only as a share.
    assert tenant_view["index_chunks"] == api["index_chunks"]
    assert tenant_view["index"]["indexed_percent"] == api["index"]["indexed_percent"]
    assert tenant_view["index"]["chunks"] is None and tenant_view["last_run"] is None

    shown = " ".join(_cli_status(tmp_path, monkeypatch, "--tenant", "acme").split())
    unchanged = last["unchanged"]
    assert f"added 1, modified 1, deleted 1, unchanged {unchanged}, failed 0" in shown
    assert f"chunks in the index: {truth['acme']}" in shown
    indexed = api["index"]["indexed_chunks"]
    assert f"vector index: {indexed} of {truth['all']} chunks indexed" in shown
