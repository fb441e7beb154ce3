"""A generated corpus of malformed and adversarial files, with what ingestion must make of each.

`write_hostile_corpus` writes well over 200 hostile objects beside a few good documents and returns
an expectation per key: `Expect("failed", reason)` when the file must be quarantined with a reason
containing `reason`, `Expect("indexed")` when it is a valid document under a hostile name, and
`Expect("either")` where a lenient parser may legitimately recover text (a PDF cut short after its
first page). Nothing here may crash a worker, grow its memory without bound, or keep the good
documents around it from being indexed. Deterministic: same bytes on every run.
"""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.support.documents import (
    binary_garbage,
    corrupt_pdf,
    deep_html,
    deep_json,
    make_docx,
    make_html,
    make_markdown,
    make_pdf,
    make_pptx,
    make_xlsx,
    zip_bomb,
    zip_bomb_docx,
    zip_not_docx,
)


@dataclass(frozen=True)
class Expect:
    outcome: Literal["failed", "indexed", "either"]
    reason: str = ""


GOOD = {
    f"good/doc{n:02d}.md": make_markdown(f"Good document {n}", [f"Valid text about gannet{n}."])
    for n in range(12)
}


def _zip(members: dict[str, bytes], forged_size: int | None = None) -> bytes:
    """A zip archive; `forged_size` makes every member's header lie about its inflated size."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    raw = buffer.getvalue()
    if forged_size is None:
        return raw
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        infos = archive.infolist()
    out = bytearray(raw)
    for info in infos:  # uncompressed size: at +22 in the local header, +24 in the central one
        out[info.header_offset + 22 : info.header_offset + 26] = forged_size.to_bytes(4, "little")
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        out[central + 24 : central + 28] = forged_size.to_bytes(4, "little")
        central = raw.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def _docx_members() -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(make_docx(["Members of a real document."]))) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _hostile_files() -> tuple[dict[str, tuple[bytes, Expect]], dict[str, bytes]]:
    """(documents with their expectations, sidecars by key)."""
    rnd = random.Random(7)
    files: dict[str, tuple[bytes, Expect]] = {}
    sidecars: dict[str, bytes] = {}

    def add(key: str, data: bytes, outcome: str, reason: str = "") -> None:
        files[key] = (data, Expect(outcome, reason))  # type: ignore[arg-type]

    # Truncated PDFs: cut anywhere from the header to just before the end.
    pdf = make_pdf([f"Page {p} of a report about herons." for p in range(6)], title="Report")
    for n, frac in enumerate([0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.97]):
        cut = pdf[: int(len(pdf) * frac)]
        add(f"pdf/truncated-{n:02d}.pdf", cut, "failed" if frac < 0.05 else "either")
    for n in range(8):
        flipped = bytearray(pdf)
        for _ in range(40):
            flipped[rnd.randrange(len(flipped))] = rnd.randrange(256)
        add(f"pdf/bitflips-{n}.pdf", bytes(flipped), "either")
    add("pdf/corrupt.pdf", corrupt_pdf(), "failed", "corrupt PDF")
    add("pdf/not-a-pdf.pdf", b"%PDF-1.7\n" + binary_garbage(3000, 5), "failed", "PDF")
    add("pdf/html-inside.pdf", make_html("x", ["not a pdf"]), "failed", "PDF")
    add("pdf/empty.pdf", b"", "failed", "empty")

    # Zip bombs and broken archives disguised as DOCX.
    for n, size in enumerate([250_000_000, 400_000_000]):
        add(f"docx/bomb-{n}.docx", zip_bomb_docx(size), "failed", "zip bomb")
    members = _docx_members()
    zeros = bytes(50_000_000)
    add(
        "docx/bomb-many.docx",
        _zip({**members, **{f"p{i}": zeros for i in range(5)}}),
        "failed",
        "zip bomb",
    )
    bomb_xml = members["word/document.xml"] + bytes(100_000_000)
    add(
        "docx/bomb-forged.docx",
        _zip({**members, "word/document.xml": bomb_xml}, 4096),
        "failed",
        "DOCX",
    )
    add("docx/not-zip.docx", binary_garbage(5000, 9), "failed", "corrupt DOCX")
    add("docx/plain-zip.docx", zip_not_docx(), "failed", "DOCX")
    add("docx/pdf-inside.docx", pdf, "failed", "corrupt DOCX")
    full = make_docx([f"Paragraph {i} about cormorants." for i in range(30)])
    for n, frac in enumerate([0.1, 0.3, 0.5, 0.7, 0.9, 0.99]):
        add(f"docx/truncated-{n}.docx", full[: int(len(full) * frac)], "failed", "DOCX")
    add(
        "docx/no-document-xml.docx",
        _zip({k: v for k, v in members.items() if k != "word/document.xml"}),
        "failed",
        "DOCX",
    )
    add(
        "docx/xml-bomb.docx",
        _zip({**members, "word/document.xml": _billion_laughs()}),
        "failed",
        "DOCX",
    )

    # The same for the other Office formats (issue 16), and broken CSV and e-mail.
    for ext, make, media in (
        ("pptx", lambda: make_pptx([f"Slide {i} about boobies." for i in range(8)]), "ppt"),
        (
            "xlsx",
            lambda: make_xlsx({"S": [[f"row {i} about frigatebirds"] for i in range(50)]}),
            "xl",
        ),
    ):
        fmt = ext.upper()
        good = make()
        add(
            f"{ext}/bomb.{ext}",
            zip_bomb(good, f"{media}/media/p.bin", 250_000_000),
            "failed",
            "zip bomb",
        )
        with zipfile.ZipFile(io.BytesIO(good)) as archive:
            parts = {name: archive.read(name) for name in archive.namelist()}
        add(
            f"{ext}/bomb-forged.{ext}",
            _zip({**parts, "pad": bytes(100_000_000)}, 4096),
            "failed",
            fmt,
        )
        add(
            f"{ext}/xml-bomb.{ext}",
            _zip({**parts, "[Content_Types].xml": _billion_laughs()}),
            "failed",
            fmt,
        )
        add(f"{ext}/not-zip.{ext}", binary_garbage(5000, 11), "failed", "not a zip archive")
        for n, frac in enumerate([0.1, 0.5, 0.9, 0.99]):
            add(f"{ext}/truncated-{n}.{ext}", good[: int(len(good) * frac)], "failed", fmt)
    add("csv/nul.csv", b"a,b\n1,\x00\n", "failed", "NUL")
    add("csv/latin1.csv", "name\ncaf\xe9\n".encode("latin-1"), "failed", "not valid UTF-8")
    add("csv/huge-field.csv", b'a\n"' + b"x" * 200_000 + b'"\n', "failed", "CSV")
    add("csv/unclosed-quote.csv", b'a,b\n"open,1\nrest about noddies', "either")
    add("eml/binary.eml", binary_garbage(3000, 12), "failed", "NUL")
    add("eml/headers-only.eml", b"Subject: nothing\n\n", "failed", "no extractable text")

    # Deeply nested markup and data.
    for n, depth in enumerate([1_000, 10_000, 50_000, 200_000]):
        add(f"html/deep-div-{n}.html", deep_html(depth), "either")
        add(f"html/deep-span-{n}.html", ("<span>" * depth + "x").encode(), "either")
    for n, depth in enumerate([1_000, 10_000, 100_000, 1_000_000]):
        add(f"json/deep-array-{n}.json", deep_json(depth), "failed", "JSON")
        add(
            f"json/deep-object-{n}.json",
            ('{"a":' * depth + "1" + "}" * depth).encode(),
            "failed",
            "JSON",
        )
    add(
        "html/script-only.html",
        make_html("x", [], body_extra="<script>alert(1)</script>"),
        "failed",
        "no extractable text",
    )
    add("html/unclosed.html", b"<html><body><p>Unclosed paragraph about grebes" * 50, "indexed")
    add("json/huge-number.json", b"1" + b"0" * 100_000, "failed", "JSON")
    add("json/not-json.json", b"{'single': 'quotes'}", "failed", "invalid JSON")
    add("json/nan.json", b'{"a": NaN, "text": "value about puffins"}', "either")
    add("json/empty-object.json", b"{}", "failed", "no extractable text")

    # Invalid text encodings and binary content in text formats.
    for n in range(50):
        ext = ["txt", "md", "json"][n % 3]
        add(f"bytes/garbage-{n:02d}.{ext}", binary_garbage(2000 + n * 50, seed=n), "failed")
    for n, seq in enumerate(
        [
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf8\x88\x80\x80\x80",
            b"\xff\xfe",
            b"\x80",
            b"\xe2\x82",
            b"\xf4\x90\x80\x80",
        ]
    ):
        add(
            f"utf8/invalid-{n}.txt",
            b"Text about terns " + seq + b" and more.",
            "failed",
            "not valid UTF-8",
        )
        add(f"utf8/invalid-{n}.md", b"# Title\n\nBody " + seq, "failed", "not valid UTF-8")
    add("utf8/latin1.txt", "café crème brûlée".encode("latin-1"), "failed", "not valid UTF-8")
    for n in range(10):
        add(
            f"nul/nul-{n}.txt",
            b"Text about auks" + b"\x00" * (n + 1) + b"continues.",
            "failed",
            "NUL",
        )
    add("nul/nul.md", b"# T\n\n\x00\x00", "failed", "NUL")

    # Enormous single lines, empty and blank files, unsupported types.
    add(
        "lines/megabyte-no-space.txt",
        "".join(f"{i:07d}" for i in range(150_000)).encode(),
        "indexed",
    )
    add("lines/repeated-word.txt", b"petrel " * 200_000, "indexed")
    add("lines/long-line.md", b"# Long\n\n" + b"kittiwake-" * 20_000, "indexed")
    for n, data in enumerate([b"", b" ", b"\n\n\n", b"\t \r\n", "\u200b\u200b".encode()]):
        add(f"empty/blank-{n}.txt", data, "failed", "empty" if not data else "no extractable text")
    for ext in [
        "exe",
        "bin",
        "so",
        "zip",
        "tar",
        "gz",
        "png",
        "jpg",
        "mp4",
        "rtf",
        "doc",
        "odt",
        "epub",
        "csv2",
        "TXT~",
        "pdf.exe",
        "7z",
        "iso",
    ]:
        add(f"types/file.{ext}", binary_garbage(300, seed=len(ext)), "failed", "unsupported")
    add("types/no-extension", b"A file without an extension.", "failed", "unsupported")

    # Valid documents under hostile names: unicode, look-alikes, control characters, long names.
    names = [
        "unicode/résumé été.md",
        "unicode/re\u0301sume\u0301.md",
        "unicode/日本語の文書.txt",
        "unicode/مستند.txt",
        "unicode/\u202egnp.txt",
        "unicode/zero\u200bwidth.txt",
        "unicode/emoji 📄🔥.txt",
        "unicode/line\nbreak.txt",
        "unicode/tab\there.txt",
        "unicode/quote'\"`.txt",
        "unicode/percent %2e%2e %00.txt",
        "unicode/-leading-dash.txt",
        "unicode/spaces   inside .txt",
        "unicode/semi;colon&amp.txt",
        "unicode/ø.txt",
        "unicode/" + "long" * 60 + ".txt",
        "unicode/tenants/acme/nested-lookalike.txt",
        "unicode/ｔｅｎａｎｔｓ.txt",
        "unicode/CON.txt",
        "unicode/dots..in..name...txt",
        "tenants/ac me/space.txt",
        "tenants/acme\u202e/rtl.txt",
        "tenants/" + "a" * 200 + "/long-tenant.txt",
    ]
    for n, name in enumerate(names):
        expect = "indexed"
        reason = ""
        if name.startswith("tenants/"):
            expect, reason = "failed", "is not a valid tenant id"
        add(name, f"A valid note number {n} about shearwaters.".encode(), expect, reason)

    # Sidecar metadata with wrong types, injected identities, or broken JSON.
    typed_sidecars = [
        ({"tenant_id": "globex"}, "tenant"),
        ({"tenant": "globex"}, "tenant"),
        ({"doc_id": "tenants/globex/x.txt"}, "doc_id"),
        ({"text": "injected"}, "text"),
        ({"content_hash": "0" * 64}, "content_hash"),
        ({"nested": {"a": 1}}, "scalar"),
        ({"list_of_dicts": [{"a": 1}]}, "scalar"),
        ({"none": None}, "scalar"),
        ({"bad key": 1}, "identifier"),
        ({"dotted.key": 1}, "identifier"),
        ({"": 1}, "identifier"),
        ({"x" * 300: 1}, "identifier"),
    ]
    for n, (meta, reason) in enumerate(typed_sidecars):
        key = f"sidecar/typed-{n:02d}.txt"
        add(key, f"A note about fulmars number {n}.".encode(), "failed", reason)
        sidecars[f"{key}.meta.json"] = json.dumps(meta).encode()
    raw_sidecars = [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"string"', "JSON object"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "sidecar"),
        (json.dumps({"big": "x" * 100_000}).encode(), "over"),
    ]
    for n, (data, reason) in enumerate(raw_sidecars):
        key = f"sidecar/raw-{n}.txt"
        add(key, f"Another note about skuas number {n}.".encode(), "failed", reason)
        sidecars[f"{key}.meta.json"] = data
    sidecars["sidecar/orphan.txt.meta.json"] = b'{"tenant_id": "globex"}'  # no document
    return files, sidecars


def _billion_laughs() -> bytes:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">'
        for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?><!DOCTYPE lolz [' + "".join(entities) + "]>"
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        "<w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>"
    ).encode()


def hostile_documents() -> dict[str, tuple[bytes, Expect]]:
    """The corpus's documents (the good ones too) by key with their expectations, written
    nowhere: for what only reads them, like the chunker's equality test."""
    good = {key: (data, Expect("indexed")) for key, data in GOOD.items()}
    return {**good, **_hostile_files()[0]}


def write_hostile_corpus(bucket: Path, sparse_bytes: int = 1 << 30) -> dict[str, Expect]:
    """Writes the corpus and the good documents; returns the expectation for every document key
    (sidecars are not documents and have none). `sparse_bytes`: the size of the sparse files."""
    expectations: dict[str, Expect] = {}
    for key, data in GOOD.items():
        _write(bucket / key, data)
        expectations[key] = Expect("indexed")
    files, sidecars = _hostile_files()
    for key, (data, expect) in files.items():
        _write(bucket / key, data)
        expectations[key] = expect
    for key, data in sidecars.items():
        _write(bucket / key, data)
    for ext in ("txt", "pdf", "docx"):  # holes: a 1 GB file that takes no disk
        key = f"sparse/one-gigabyte.{ext}"
        (bucket / key).parent.mkdir(parents=True, exist_ok=True)
        with (bucket / key).open("wb") as f:
            f.truncate(sparse_bytes)
        expectations[key] = Expect("failed", "byte limit")
    # Not documents at all: a symlink out of the bucket, a FIFO (reading it would block), a loop.
    (bucket / "special").mkdir()
    os.symlink("/etc/passwd", bucket / "special/passwd.txt")
    os.symlink(bucket / "special", bucket / "special/loop")
    os.mkfifo(bucket / "special/pipe.txt")
    return expectations


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
