"""Incremental ingestion on the real engine, the real model and real files of every format."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.embedding import Embedder
from core.index import FieldFilter
from core.manifest import DocStatus, RunSummary
from core.runtime import Runtime
from core.types import TenantScope
from ingest.chunking import Chunker
from ingest.service import Ingestion, open_bucket
from tests.support.documents import binary_garbage, corrupt_pdf, make_docx, make_html, make_pdf
from tests.support.engine import engine_query
from tests.support.settings import make_settings

DEFAULT = TenantScope("default")

PARAGRAPHS = [
    f"Paragraph {i} is about topic {i}. " + " ".join(f"word{i}x{j}" for j in range(40))
    for i in range(12)
]


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def sync(rt: Runtime) -> RunSummary:
    return Ingestion(rt, open_bucket(rt.settings.ingest.bucket_url, rt.settings.ingest)).run()


def doc_chunks(rt: Runtime, doc_id: str, scope: TenantScope = DEFAULT) -> set[str]:
    return rt.index.chunk_ids(scope, doc_id)


def populate(bucket: Path) -> None:
    write(bucket / "notes.txt", "Qdrant stores vectors. It is written in Rust.")
    write(bucket / "guide.md", "# Guide\n\nHybrid search fuses dense and sparse rankings.")
    write(bucket / "page.html", make_html("Page", ["Reciprocal rank fusion was proposed in 2009."]))
    write(bucket / "paper.pdf", make_pdf(["Cross-encoders rerank candidate passages."], "Paper"))
    write(bucket / "memo.docx", make_docx(["The memo discusses embedding caches."], "Memo"))
    write(bucket / "record.json", '{"title": "Record", "body": "JSON documents are flattened."}')


@pytest.fixture
def small_chunks(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, backend: str
) -> Iterator[Runtime]:
    """A runtime with 64-token chunks, so one document spans many chunks."""
    rt = Runtime(make_settings(tmp_path, backend, chunk_size=64, chunk_overlap=8), embedder)
    yield rt
    rt.close()


def test_every_format_is_indexed_and_searchable(runtime: Runtime, bucket_dir: Path) -> None:
    populate(bucket_dir)
    summary = sync(runtime)
    assert (summary.added, summary.failed) == (6, 0)
    records = runtime.manifest.all()
    assert {r.status for r in records.values()} == {DocStatus.INDEXED}
    titles = {
        r.doc_id: runtime.index.retrieve(DEFAULT, r.chunk_ids[:1])[0].payload
        for r in records.values()
    }
    assert titles["paper.pdf"]["title"] == "Paper"
    assert titles["memo.docx"]["mime_type"].endswith("wordprocessingml.document")
    hits = runtime.index.search(
        engine_query(
            DEFAULT, limit=3, dense=runtime.embedder.embed_query("rerankers"), text="rerank"
        )
    )
    assert hits[0].payload["doc_id"] == "paper.pdf"


def test_unchanged_rescan_makes_zero_embedding_calls(runtime: Runtime, bucket_dir: Path) -> None:
    populate(bucket_dir)
    sync(runtime)
    before = runtime.embedder.texts_embedded
    second = sync(runtime)
    assert (second.unchanged, second.added, second.modified, second.chunks_embedded) == (6, 0, 0, 0)
    # New stat data, same bytes: read and hashed, but neither parsed nor embedded.
    os.utime(bucket_dir / "notes.txt", (1, 1))
    third = sync(runtime)
    assert (third.unchanged, third.modified, third.chunks_embedded) == (6, 0, 0)
    assert runtime.embedder.texts_embedded == before


def test_editing_one_paragraph_reembeds_only_changed_chunks(
    small_chunks: Runtime, bucket_dir: Path
) -> None:
    rt = small_chunks
    doc = write(bucket_dir / "long.txt", "\n\n".join(PARAGRAPHS))
    sync(rt)
    old_ids = doc_chunks(rt, "long.txt")
    assert len(old_ids) >= 8

    edited = list(PARAGRAPHS)
    edited[6] = "Paragraph 6 now talks about something else entirely: zebras and giraffes."
    doc.write_text("\n\n".join(edited))
    chunker = Chunker(rt.embedder.tokenizer.backend_tokenizer, 64, 8)
    old_hashes = {c.hash for c in chunker.split("\n\n".join(PARAGRAPHS))}
    new_hashes = {c.hash for c in chunker.split("\n\n".join(edited))}
    changed = new_hashes - old_hashes

    before = rt.embedder.texts_embedded
    summary = sync(rt)
    assert summary.modified == 1
    assert 0 < len(changed) < len(new_hashes) / 2
    assert rt.embedder.texts_embedded - before == len(changed) == summary.chunks_embedded
    new_ids = doc_chunks(rt, "long.txt")
    assert len(new_ids) == len(new_hashes)
    assert len(old_ids & new_ids) == len(new_hashes) - len(changed)
    assert rt.index.count(DEFAULT) == len(new_hashes)
    hits = rt.index.search(engine_query(DEFAULT, limit=1, text="zebras giraffes"))
    assert "zebras" in hits[0].payload["text"]


def test_a_batch_counts_each_embedded_chunk_for_one_document(
    runtime: Runtime, bucket_dir: Path
) -> None:
    """A text two documents of one batch share reaches the model once, so it counts for one of
    them: the outcomes add up to what the model was sent."""
    write(bucket_dir / "a.txt", "A paragraph about puffins, shared word for word.")
    write(bucket_dir / "b.txt", "A paragraph about puffins, shared word for word.")
    write(bucket_dir / "c.txt", "A paragraph of its own, about gannets.")
    ingestion = Ingestion(
        runtime, open_bucket(runtime.settings.ingest.bucket_url, runtime.settings.ingest)
    )
    plan = ingestion.plan()
    before = runtime.embedder.texts_embedded
    counts = {o.doc_id: o.chunks_embedded for o in ingestion.syncer.sync(plan.to_sync, {})}
    assert counts["c.txt"] == 1 and sorted(counts.values()) == [0, 1, 1]
    assert runtime.embedder.texts_embedded - before == 2


def test_deleting_a_file_removes_all_its_chunks(runtime: Runtime, bucket_dir: Path) -> None:
    populate(bucket_dir)
    sync(runtime)
    assert doc_chunks(runtime, "guide.md")
    (bucket_dir / "guide.md").unlink()
    summary = sync(runtime)
    assert summary.deleted == 1
    assert doc_chunks(runtime, "guide.md") == set()
    assert "guide.md" not in runtime.index.document_ids()
    assert runtime.manifest.get("guide.md").status == DocStatus.DELETED
    hits = runtime.index.search(engine_query(DEFAULT, limit=10, text="hybrid search fuses"))
    assert all(h.payload["doc_id"] != "guide.md" for h in hits)


def test_same_document_under_two_tenants_is_isolated(runtime: Runtime, bucket_dir: Path) -> None:
    text = "Tenant isolation keeps acme and globex apart."
    write(bucket_dir / "tenants/acme/shared.txt", text)
    write(bucket_dir / "tenants/globex/shared.txt", text)
    write(bucket_dir / "tenants/globex/secret.txt", "Globex launch codes are orange.")
    sync(runtime)
    acme, globex = TenantScope("acme"), TenantScope("globex")
    vector = runtime.embedder.embed_query("launch codes")
    for scope, allowed in ((acme, {"tenants/acme/shared.txt"}), (globex, None)):
        hits = runtime.index.search(
            engine_query(scope, limit=10, dense=vector, text="launch codes")
        )
        assert {h.payload["tenant_id"] for h in hits} == {scope.tenant_id}
        if allowed is not None:
            assert {h.payload["doc_id"] for h in hits} == allowed
    assert runtime.index.count(acme) == 1
    assert runtime.index.count(globex) == 2
    assert doc_chunks(runtime, "tenants/acme/shared.txt", acme).isdisjoint(
        doc_chunks(runtime, "tenants/globex/shared.txt", globex)
    )
    assert doc_chunks(runtime, "tenants/globex/secret.txt", acme) == set()


def test_bad_files_are_quarantined_and_fixed_versions_picked_up(
    tmp_path: Path, bucket_dir: Path, embedder: Embedder, backend: str
) -> None:
    rt = Runtime(make_settings(tmp_path, backend, max_file_bytes=60_000), embedder)
    populate(bucket_dir)
    write(bucket_dir / "broken.pdf", corrupt_pdf())
    write(bucket_dir / "garbage.txt", binary_garbage())
    write(bucket_dir / "empty.txt", b"")
    write(bucket_dir / "huge.txt", "x " * 40_000)
    write(bucket_dir / "latin1.txt", "caf\xe9".encode("latin-1"))
    write(bucket_dir / "image.png", b"\x89PNG\r\n\x1a\n")
    summary = sync(rt)
    assert (summary.added, summary.failed) == (6, 6)
    reasons = {d: r.error for d, r in rt.manifest.all().items() if r.status == DocStatus.FAILED}
    assert "corrupt PDF" in reasons["broken.pdf"]
    assert "binary content" in reasons["garbage.txt"]
    assert "empty" in reasons["empty.txt"]
    assert "limit" in reasons["huge.txt"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "unsupported" in reasons["image.png"]
    assert set(reasons).isdisjoint(rt.index.document_ids())

    again = sync(rt)  # quarantined until they change: no retry storm
    assert (again.failed, again.unchanged) == (0, 12)

    write(bucket_dir / "broken.pdf", make_pdf(["Now a valid PDF about lighthouses."]))
    fixed = sync(rt)
    assert (fixed.added, fixed.failed) == (1, 0)
    assert rt.manifest.get("broken.pdf").status == DocStatus.INDEXED
    hits = rt.index.search(engine_query(DEFAULT, limit=1, text="lighthouses"))
    assert hits[0].payload["doc_id"] == "broken.pdf"
    rt.close()


def test_a_document_that_turns_bad_loses_its_old_chunks(runtime: Runtime, bucket_dir: Path) -> None:
    write(bucket_dir / "flip.pdf", make_pdf(["Originally fine content about otters."]))
    sync(runtime)
    assert doc_chunks(runtime, "flip.pdf")
    write(bucket_dir / "flip.pdf", corrupt_pdf())
    summary = sync(runtime)
    assert summary.failed == 1
    assert doc_chunks(runtime, "flip.pdf") == set()


def test_sidecar_metadata_is_filterable_and_cannot_change_tenant(
    runtime: Runtime, bucket_dir: Path
) -> None:
    write(bucket_dir / "a.txt", "Quarterly report on solar panels.")
    write(bucket_dir / "a.txt.meta.json", '{"author": "Ann", "year": 2024, "tags": ["energy"]}')
    write(bucket_dir / "b.txt", "Quarterly report on wind turbines.")
    write(bucket_dir / "b.txt.meta.json", '{"author": "Bob", "year": 2023}')
    write(bucket_dir / "c.txt", "Sneaky document.")
    write(bucket_dir / "c.txt.meta.json", '{"tenant_id": "acme"}')
    summary = sync(runtime)
    assert (summary.added, summary.failed) == (2, 1)
    assert "tenant" in runtime.manifest.get("c.txt").error
    assert runtime.index.count(TenantScope("acme")) == 0

    def authors(*filters: FieldFilter) -> set[str]:
        q = engine_query(DEFAULT, limit=10, text="quarterly report", filters=filters)
        return {h.payload["author"] for h in runtime.index.search(q)}

    assert authors(FieldFilter("author", "eq", "Ann")) == {"Ann"}
    assert authors(FieldFilter("meta.year", "eq", 2023)) == {"Bob"}
    assert authors(FieldFilter("meta.tags", "any", ("energy",))) == {"Ann"}

    # Changing only the sidecar re-syncs the document (no new embeddings: same chunk text).
    write(bucket_dir / "b.txt.meta.json", '{"author": "Bea", "year": 2023}')
    before = runtime.embedder.texts_embedded
    assert sync(runtime).modified == 1
    assert runtime.embedder.texts_embedded == before
    assert authors(FieldFilter("author", "eq", "Bea")) == {"Bea"}


def test_scan_removes_orphans_left_by_a_crashed_run(runtime: Runtime, bucket_dir: Path) -> None:
    write(bucket_dir / "kept.txt", "A kept document about herons.")
    write(bucket_dir / "gone.txt", "A document about egrets.")
    sync(runtime)
    # A crash after the index write but before the manifest write, then the file was removed:
    # the manifest forgets the document, the index still holds it.
    with sqlite3.connect(runtime.settings.data_dir / "manifest.sqlite") as conn:
        conn.execute("DELETE FROM documents WHERE doc_id = 'gone.txt'")
    (bucket_dir / "gone.txt").unlink()
    # ...and a stale extra point of a document whose manifest row says it is indexed.
    stray = runtime.index.retrieve(DEFAULT, list(doc_chunks(runtime, "kept.txt")))[0]
    runtime.index.delete([stray.id])
    summary = sync(runtime)
    assert summary.deleted == 1 and summary.modified == 1
    assert set(runtime.index.document_ids()) == {"kept.txt"}
    assert len(doc_chunks(runtime, "kept.txt")) == 1


def test_chunks_fit_the_embedding_models_window(embedder: Embedder) -> None:
    """By default a chunk is as long as the model reads (MiniLM: 256 tokens with [CLS]/[SEP]), so
    no chunk carries text its vector never saw; a larger chunk_size is refused outright."""
    assert embedder.max_tokens == 254
    chunker = Chunker.for_embedder(embedder, None, 16)
    text = "\n\n".join(" ".join(f"word{p}x{i}" for i in range(120)) for p in range(12))
    chunks = chunker.split(text)
    sizes = [len(embedder.tokenizer(c.text, add_special_tokens=False)["input_ids"]) for c in chunks]
    assert len(chunks) > 1
    assert max(sizes) <= embedder.max_tokens
    assert max(sizes) > embedder.max_tokens // 2  # the window is used, not a small default
    with pytest.raises(ValueError, match="exceeds the embedding model's window of 254"):
        Chunker.for_embedder(embedder, 512, 16)


def test_text_the_tokenizer_cannot_split_is_still_cut_to_size(embedder: Embedder) -> None:
    """A megabyte without spaces is one unknown token to the model; it must not become one
    megabyte-long chunk in the index."""
    chunker = Chunker.for_embedder(embedder, None, 16)
    blob = "".join(f"{i:07d}" for i in range(150_000))  # 1.05 MB of digits, no space
    text = f"A short introduction.\n\n{blob}"
    chunks = chunker.split(text)
    assert len(chunks) > 200 and max(len(c.text) for c in chunks) <= 254 * 16
    assert "".join(c.text for c in chunks) == text  # cut, not lost
