"""A bucket folder under `tenants/` whose name is not a tenant id (issue 23, finding 3).

Its documents belong to no tenant: each is quarantined with a reason naming the folder and the
rule, and none of them may block a scan, a delete or an index generation switch. On the release
before, one such file (`tenants/ac.me/b.txt`) was recorded under tenant '' and every rebuild
failed at its switch with `InvalidTenantError("invalid tenant id ''")`; its deletes were held
under tenant '' until `rag deletes confirm --tenant ''`.

Real engine, real MiniLM, real files; the graph is on, as it is served, since its switch is the
one that read every record's tenant.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from core.embedding import Embedder
from core.manifest import NO_TENANT, DocStatus
from core.runtime import Runtime
from core.settings import get_settings
from core.types import TENANT_ID_RULE
from ingest.held_deletes import held_deletes
from ingest.status import read_status
from serving.platform import Platform
from tests.support.essays import DEFAULT, fill
from tests.support.settings import make_settings

# Folders a bucket writer can make that name no tenant; an empty folder (`tenants//x.txt`) exists
# only in S3 and is covered by the unit test of `tenant_of` (tests/test_isolation_random.py).
NOT_TENANTS = {"tenants/ac.me/b.txt": "ac.me", "tenants/acme\n/x.txt": "acme\n"}


def reason_for(folder: str) -> str:
    return f"tenant folder {folder!r} is not a valid tenant id: {TENANT_ID_RULE}"


def write(bucket: Path, key: str, text: str) -> None:
    path = bucket / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def status_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """`rag status` in this process, on the test's data dir."""
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_a_rebuild_switches_with_folders_that_are_not_tenants_and_status_says_why(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, status_cli: CliRunner
) -> None:
    fill(bucket_dir, n=1)
    for key in NOT_TENANTS:
        write(bucket_dir, key, "A note about shearwaters that no tenant owns.")
    with Platform(Runtime(make_settings(tmp_path), embedder)) as platform:
        summary = platform.ingestion.run()
        assert (summary.added, summary.failed) == (2, 2)
    changed = make_settings(tmp_path, chunk_overlap=16)
    with Platform(Runtime(changed, embedder)) as platform:
        rebuild = platform.rebuild()
        progress = rebuild.run(max_docs=2)
        rebuild.close()
        rt = platform.runtime
        assert progress.switched and progress.done == progress.total == 4
        assert rt.index.generation_record()["chunk_overlap"] == 16
        assert set(rt.index.document_ids()) == {"glaciers.txt", "short.txt"}
        with platform.graph_store.read(DEFAULT) as graph:
            assert set(graph.docs) == {"glaciers.txt", "short.txt"}
        report = read_status(rt.manifest)
        assert report.rebuild is not None and report.rebuild["switched"]
        failed = {r.doc_id: r for r in report.failed}
        assert set(failed) == set(NOT_TENANTS)
        for key, folder in NOT_TENANTS.items():
            assert failed[key].error == reason_for(folder)
            assert failed[key].tenant_id == NO_TENANT and failed[key].scope is None
        assert read_status(rt.manifest, "default").counts["failed"] == 0  # in no tenant
    shown = status_cli.invoke(cli_app, ["status", "--failed", "--json"])
    assert shown.exit_code == 0, shown.output
    listed = {f["doc_id"]: f["error"] for f in json.loads(shown.stdout)["failed"]}
    assert listed == {key: reason_for(folder) for key, folder in NOT_TENANTS.items()}


def test_documents_of_no_tenant_leave_without_a_confirmation_and_the_rebuild_still_switches(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder
) -> None:
    """Deleting the folder's files mid-rebuild: the served scan deletes them at once (there is
    no tenant to confirm them for, and nothing searchable to lose), and the rebuild, which had
    quarantined them in its own manifest, deletes them there too and switches."""
    fill(bucket_dir, n=1)
    strays = [f"tenants/ac.me/note{i}.txt" for i in range(3)]  # enough to trip the delete hold
    for key in strays:
        write(bucket_dir, key, "A note about shearwaters that no tenant owns.")
    with Platform(Runtime(make_settings(tmp_path), embedder)) as platform:
        assert platform.ingestion.run().failed == 3
    changed = make_settings(tmp_path, chunk_overlap=16)
    with Platform(Runtime(changed, embedder)) as platform:
        rt = platform.runtime
        rebuild = platform.rebuild()
        first = rebuild.step(max_docs=10)  # every document synced, not yet switched
        assert not first.switched and first.done == first.total == 5
        for key in strays:
            (bucket_dir / key).unlink()
        summary = platform.ingestion.run()
        assert summary.deleted == 3 and held_deletes(rt.manifest) == {}
        assert all(rt.manifest.get(key).status == DocStatus.DELETED for key in strays)  # type: ignore[union-attr]
        progress = rebuild.run(max_docs=10)
        rebuild.close()
        assert progress.switched and progress.total == 2
        report = read_status(rt.manifest)
        assert report.failed == [] and report.held_deletes == {}
        assert set(rt.index.document_ids()) == {"glaciers.txt", "short.txt"}
