"""The manifest in the state database, on both backends: SQLite in the data dir and the suite's
own PostgreSQL (the `state_settings` fixture)."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.manifest import (
    DocStatus,
    DocumentRecord,
    Manifest,
    RunSummary,
    generation_namespace,
)
from core.settings import Settings


@pytest.fixture
def manifest(state_settings: Settings):
    opened = Manifest.open(state_settings)
    yield opened
    opened.close()


def record(doc_id: str, tenant: str = "acme", chunks: int = 1) -> DocumentRecord:
    return DocumentRecord(
        doc_id,
        tenant,
        doc_id,
        DocStatus.INDEXED,
        chunk_ids=[f"{doc_id}#{n}" for n in range(chunks)],
    )


def test_a_failed_write_rolls_back_and_the_next_one_commits(
    manifest: Manifest, state_settings: Settings
) -> None:
    with pytest.raises(UnicodeEncodeError):  # a surrogate, as os.walk decodes bad bytes
        manifest.mark_queued({"bad\udcff.txt": ("acme", "task-1"), "good.txt": ("acme", "t")})
    assert manifest.pending() == {}  # nothing of the failed batch landed
    manifest.mark_queued({"good.txt": ("acme", "task-2")})
    manifest.put(DocumentRecord("good.txt", "acme", "good.txt", DocStatus.INDEXED))
    assert manifest.pending().keys() == {"good.txt"}
    reopened = Manifest.open(state_settings)  # what was committed is in the database
    try:
        assert reopened.get("good.txt") is not None
    finally:
        reopened.close()


def test_counts_of_concurrent_outcomes_are_never_lost(manifest: Manifest) -> None:
    """Tasks on several hosts report into one run at once: each count is one UPDATE."""
    run_id = manifest.record_run(RunSummary(planned=200))
    kinds = ["added", "modified", "deleted", "failed"]

    def report(kind: str) -> None:
        for _ in range(50):
            manifest.add_outcome(run_id, kind, chunks_embedded=2)

    with ThreadPoolExecutor(len(kinds)) as pool:
        list(pool.map(report, kinds))
    run = manifest.last_run()
    assert run is not None
    assert (run.added, run.modified, run.deleted, run.failed) == (50, 50, 50, 50)
    assert (run.completed, run.chunks_embedded) == (200, 400)
    assert run.finished_at >= run.started_at  # the last outcome finished it
    with pytest.raises(ValueError, match="not a run outcome"):
        manifest.add_outcome(run_id, "planned")


def test_concurrent_updates_of_one_fact_each_count(manifest: Manifest) -> None:
    def bump(value: dict | None) -> dict:
        return {"n": (value or {"n": 0})["n"] + 1}

    def bump_25_times(_: int) -> None:
        for _ in range(25):
            manifest.update_meta("held", bump)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(bump_25_times, range(4)))
    assert manifest.get_meta("held") == {"n": 100}


def test_a_generation_s_records_replace_the_served_ones_in_one_switch(
    manifest: Manifest, state_settings: Settings
) -> None:
    manifest.put(record("old.txt"), record("both.txt", chunks=1))
    built = Manifest.open(state_settings, generation_namespace("f1"))
    abandoned = Manifest.open(state_settings, generation_namespace("f0"))
    try:
        built.put(record("both.txt", chunks=3), record("new.txt", tenant="globex"))
        abandoned.put(record("stale.txt"))
        assert set(manifest.all()) == {"old.txt", "both.txt"}  # namespaces stay apart
        assert manifest.chunk_count() == 2 and built.chunk_count() == 4
        assert set(built.object_states()) == {"both.txt", "new.txt"}

        manifest.drop_other_generations(generation_namespace("f1"))
        assert abandoned.is_empty() and not built.is_empty()

        manifest.take_documents(built, {"generation": {"id": "f1"}})
        assert set(manifest.all()) == {"both.txt", "new.txt"}
        assert manifest.get("both.txt").chunk_ids == ["both.txt#0", "both.txt#1", "both.txt#2"]  # type: ignore[union-attr]
        assert manifest.tenants() == ["acme", "globex"]
        assert manifest.get_meta("generation") == {"id": "f1"}
        assert built.is_empty()
    finally:
        built.close()
        abandoned.close()


def test_store_files_are_private(tmp_path: Path) -> None:
    manifest = Manifest.open(Settings(data_dir=tmp_path / "data"))
    try:
        manifest.put(DocumentRecord("a.txt", "acme", "a.txt", DocStatus.INDEXED))
        files = list((tmp_path / "data").iterdir())
        assert {f.name for f in files} >= {"manifest.sqlite", "manifest.sqlite-wal"}
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    finally:
        manifest.close()


def test_an_error_quoting_a_nul_is_stored_on_either_backend(manifest: Manifest) -> None:
    """A parser's message may quote the document's bytes: PostgreSQL refuses a NUL in text, and
    the failed document's record must still be written, or its task fails over and over."""
    failed = DocumentRecord("bad.txt", "acme", "bad.txt", DocStatus.FAILED, error="bad \x00 byte")
    manifest.put(failed)
    assert manifest.get("bad.txt").error == "bad \ufffd byte"  # type: ignore[union-attr]
    manifest.mark_queued({"bad.txt": ("acme", "task-1")})
    manifest.note_error("bad.txt", "retrying after \x00")
    assert manifest.pending()["bad.txt"].error == "retrying after \ufffd"
