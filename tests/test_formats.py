"""Formats are modules in `ingest/formats/`, each with its own version: adding one is adding a
module (here in a folder of the Python path, as a deployment's own format would be), and a
changed version parses that format's documents again and no others, from the embedding cache.

The real pipeline: parser processes (fresh interpreters, which find the added module through
PYTHONPATH), the embedded engine and the real model.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from core.embedding import Embedder
from core.manifest import DocStatus, RunSummary
from core.runtime import Runtime
from ingest import formats
from ingest.isolation import close_shared_pools
from ingest.service import Ingestion, open_bucket
from tests.support.settings import make_settings

NOTE_FORMAT = '''
from ingest.formats.base import Extracted, Format


def _parse_note(data: bytes, _limit: int) -> Extracted:
    """A note's first line is its title; version {version} {reads} the rest."""
    title, _, body = data.decode("utf-8").partition("\\n")
    return Extracted(text=body.strip(){upper}, title=title)


FORMATS = [Format("note", (".note",), "text/x-note", _parse_note, version={version})]
'''


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of the Python path, here and in the parser processes, with its own
    `ingest/formats/`; the registry is read again on entry and exit."""
    root = tmp_path / "plugins"
    (root / "ingest" / "formats").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    formats.registry.cache_clear()
    yield root / "ingest" / "formats"
    sys.modules.pop("ingest.formats.note", None)
    formats.__path__[:] = [p for p in formats.__path__ if not p.startswith(str(root))]
    formats.registry.cache_clear()


def _write_note_format(folder: Path, version: int) -> None:
    reads = "upper-cases" if version > 1 else "keeps"
    upper = ".upper()" if version > 1 else ""
    (folder / "note.py").write_text(NOTE_FORMAT.format(version=version, reads=reads, upper=upper))
    sys.modules.pop("ingest.formats.note", None)
    formats.registry.cache_clear()
    close_shared_pools()  # parsers read the formats when they start, as a restarted service does


def _sync(tmp_path: Path, embedder: Embedder) -> tuple[RunSummary, dict]:
    with Runtime(make_settings(tmp_path), embedder) as rt:
        summary = Ingestion(
            rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)
        ).run()
        return summary, rt.manifest.all()


def test_a_format_added_as_a_module_then_changed_parses_only_its_documents(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, plugins: Path
) -> None:
    (bucket_dir / "a.txt").write_text("Herons wade in shallow water.")
    (bucket_dir / "b.md").write_text("# Egrets\n\nEgrets are white herons.")
    (bucket_dir / "c.note").write_text("Storks\nStorks nest on chimneys.")
    first, records = _sync(tmp_path, embedder)
    assert (first.added, first.failed) == (2, 1)
    assert records["c.note"].error == "unsupported file type .note"

    _write_note_format(plugins, version=1)  # a module in a folder: nothing else changes
    added, records = _sync(tmp_path, embedder)
    # The quarantined note is read now; the others are left as they are, not parsed again.
    assert (added.added, added.unchanged, added.failed) == (1, 2, 0), added
    assert records["c.note"].status == DocStatus.INDEXED
    assert records["c.note"].format_version == 1

    _write_note_format(plugins, version=2)
    changed, records = _sync(tmp_path, embedder)
    assert (changed.modified, changed.unchanged) == (1, 2), changed
    assert records["c.note"].format_version == 2

    # A built-in format's version: its documents only, their unchanged chunks from the cache.
    text = formats.registry()[".txt"]
    formats.registry()[".txt"] = replace(text, version=text.version + 1)
    try:
        bumped, _ = _sync(tmp_path, embedder)
    finally:
        formats.registry.cache_clear()
    assert (bumped.modified, bumped.unchanged, bumped.chunks_embedded) == (1, 2, 0), bumped


def test_two_modules_claiming_one_suffix_are_refused(plugins: Path) -> None:
    (plugins / "clash.py").write_text(
        "from ingest.formats.base import Extracted, Format\n"
        "FORMATS = [Format('mine', ('.txt',), 'text/plain', lambda d, n: Extracted(''))]\n"
    )
    try:
        with pytest.raises(ValueError, match=r"\.txt is claimed by"):
            formats.registry()
    finally:
        sys.modules.pop("ingest.formats.clash", None)
        (plugins / "clash.py").unlink()
        formats.registry.cache_clear()
