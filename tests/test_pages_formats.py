"""Page citations, the office and data formats, and bounded document metadata (issues 16 and 13),
through the real pipeline: the parser processes, the model, the embedded engine and the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.auth import create_key
from core.embedding import Embedder
from core.index import FieldFilter
from core.manifest import DocStatus
from core.runtime import Runtime
from core.types import TenantScope
from ingest.bucket import LocalBucket
from ingest.service import Ingestion
from tests.support.api_env import running_app
from tests.support.documents import make_csv, make_eml, make_pdf, make_pptx, make_xlsx, zip_bomb
from tests.support.engine import engine_query
from tests.support.llm import LLM_URL, fake_llm
from tests.support.settings import make_settings

DEFAULT = TenantScope("default")
# Three pages, each long enough to fill several 48-token chunks on its own.
PAGES = [
    " ".join(f"{animal} sentence {n} of page {p} about {animal}." for n in range(12))
    for p, animal in ((1, "aardvark"), (2, "bison"), (3, "cheetah"))
]


@pytest.fixture
def env(tmp_path: Path, embedder: Embedder) -> Iterator[tuple[Runtime, Path]]:
    settings = make_settings(
        tmp_path,
        "edge",
        chunk_size=48,
        chunk_overlap=8,
        parse_max_expanded_bytes=2_000_000,
        llm_base_url=LLM_URL,
        llm_model="stub-model",
    )
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    runtime = Runtime(settings, embedder)
    yield runtime, bucket
    runtime.close()


def ingest(runtime: Runtime, bucket: Path, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = bucket / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    Ingestion(runtime, LocalBucket(bucket)).run()


def payloads(runtime: Runtime, doc_id: str) -> list[dict]:
    ids = sorted(runtime.index.chunk_ids(DEFAULT, doc_id))
    return [p.payload for p in runtime.index.retrieve(DEFAULT, ids)]


def test_pdf_hits_carry_their_page_and_no_chunk_spans_two(env: tuple[Runtime, Path]) -> None:
    runtime, bucket = env
    ingest(runtime, bucket, {"report.pdf": make_pdf(PAGES, "Report")})
    chunks = payloads(runtime, "report.pdf")
    assert len(chunks) >= 6 and {c["page"] for c in chunks} == {1, 2, 3}
    for chunk in chunks:  # every chunk lies within the one page it cites
        words = set(chunk["text"].replace(".", " ").split())
        assert words <= set(PAGES[chunk["page"] - 1].replace(".", " ").split()), chunk["text"]
    key = create_key(runtime.settings, "default")
    llm = httpx.MockTransport(fake_llm)
    with running_app(runtime, {"default:reader": key}, transport=llm) as api:
        for page, animal in enumerate(("aardvark", "bison", "cheetah"), start=1):
            response = api.client.post(
                "/v1/search",
                json={"query": animal, "mode": "bm25", "top_k": 3},
                headers={"X-API-Key": key},
            )
            assert response.status_code == 200, response.text
            hits = response.json()["results"]
            assert hits and all(hit["page"] == page for hit in hits), hits
        # The stub LLM cites the first source it is given: the answer names its page.
        answer = api.client.post(
            "/v1/answer",
            json={"query": "bison", "mode": "bm25", "top_k": 3},
            headers={"X-API-Key": key},
        )
        assert answer.status_code == 200, answer.text
        assert [c["page"] for c in answer.json()["citations"]] == [2]


def test_pptx_xlsx_csv_and_eml_are_searchable(env: tuple[Runtime, Path]) -> None:
    runtime, bucket = env
    files = {
        "deck.pptx": make_pptx(["Quarterly numbers.", "The narwhal migration plan."]),
        "book.xlsx": make_xlsx({"Stock": [["item", "count"], ["ocelot food", 12]]}),
        "people.csv": make_csv([["name", "pet"], ["Ada", "pangolin"], ["Bob", "cat"]]),
        "mail.eml": make_eml("Zebu delivery", "The zebu arrives on Monday."),
    }
    ingest(runtime, bucket, files)
    records = runtime.manifest.all()
    assert {k: r.status for k, r in records.items()} == dict.fromkeys(files, DocStatus.INDEXED)
    for word, doc_id in (
        ("narwhal", "deck.pptx"),
        ("ocelot", "book.xlsx"),
        ("pangolin", "people.csv"),
        ("zebu", "mail.eml"),
    ):
        hits = runtime.index.search(engine_query(DEFAULT, limit=1, text=word))
        assert hits and hits[0].payload["doc_id"] == doc_id, word
        if doc_id == "deck.pptx":
            assert hits[0].payload["page"] == 2  # the slide
        if doc_id == "people.csv":
            assert "name: Ada | pet: pangolin\n\nname: Bob" in hits[0].payload["text"]


def test_hostile_office_and_csv_files_are_quarantined_with_a_reason(
    env: tuple[Runtime, Path],
) -> None:
    runtime, bucket = env
    pptx, xlsx = make_pptx(["A slide."]), make_xlsx({"S": [["a cell"]]})
    expected = {
        "bomb.pptx": "rejected as a zip bomb",
        "bomb.xlsx": "rejected as a zip bomb",
        "cut.pptx": "corrupt PPTX",
        "cut.xlsx": "corrupt XLSX",
        "binary.csv": "binary content",
        "latin1.csv": "not valid UTF-8",
    }
    ingest(
        runtime,
        bucket,
        {
            "bomb.pptx": zip_bomb(pptx, "ppt/media/padding.bin", 5_000_000),
            "bomb.xlsx": zip_bomb(xlsx, "xl/media/padding.bin", 5_000_000),
            "cut.pptx": pptx[: len(pptx) // 2],
            "cut.xlsx": xlsx[: len(xlsx) // 2],
            "binary.csv": b"a,b\n\x00\x01,2\n",
            "latin1.csv": "name\ncaf\xe9\n".encode("latin-1"),
        },
    )
    records = runtime.manifest.all()
    for key, reason in expected.items():
        assert records[key].status == DocStatus.FAILED, key
        assert reason in records[key].error, (key, records[key].error)
    assert runtime.index.count(DEFAULT) == 0


def test_sidecar_metadata_is_stored_once_and_short_keys_stay_filterable(
    env: tuple[Runtime, Path],
) -> None:
    """Issue 13, finding 14: a sidecar's metadata used to be copied into every chunk."""
    runtime, bucket = env
    text = "\n\n".join(f"Paragraph {n} on the topic of lemurs, part {n}." for n in range(200))
    sidecar = {"team": "search", "year": 2024, "summary": "long abstract " * 700}  # 9.8 KB
    ingest(
        runtime,
        bucket,
        {
            "long.txt": text.encode(),
            "long.txt.meta.json": json.dumps(sidecar).encode(),
            "huge.txt": b"A document with an oversized sidecar.",
            "huge.txt.meta.json": json.dumps({"blob": "x" * 63_000}).encode(),
        },
    )
    chunks = payloads(runtime, "long.txt")
    assert len(chunks) >= 20
    for chunk in chunks:
        assert chunk["meta"] == {"encoding": "utf-8", "team": "search", "year": 2024}
        assert len(json.dumps(chunk)) < 1_000 + len(chunk["text"])
    record = runtime.manifest.get("long.txt")
    assert record is not None and record.meta["summary"] == sidecar["summary"]  # kept, once
    key = create_key(runtime.settings, "default")
    llm = httpx.MockTransport(fake_llm)
    with running_app(runtime, {"default:reader": key}, transport=llm) as api:
        shown = api.client.get("/v1/documents/long.txt", headers={"X-API-Key": key}).json()
        assert shown["metadata"] == {"encoding": "utf-8", **sidecar}
        search = api.client.post(
            "/v1/search",
            json={
                "query": "lemurs",
                "mode": "bm25",
                "filters": [{"field": "meta.team", "eq": "search"}],
            },
            headers={"X-API-Key": key},
        )
        assert search.status_code == 200 and len(search.content) < 20_000, len(search.content)
    hits = runtime.index.search(
        engine_query(
            DEFAULT, limit=5, text="lemurs", filters=(FieldFilter("meta.team", "eq", "search"),)
        )
    )
    assert hits and all(h.payload["doc_id"] == "long.txt" for h in hits)
    huge = runtime.manifest.get("huge.txt")
    assert huge is not None and huge.status == DocStatus.FAILED
    assert "RAG_MAX_SIDECAR_BYTES" in huge.error
