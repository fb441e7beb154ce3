"""Parsers run on real generated documents; every failure mode must surface as ParseError."""

from __future__ import annotations

import dataclasses
import io
import json
import random

import docx
import pytest

from ingest.parsers import ParsedDocument, ParseError, parse_document, supported_suffixes
from tests.support.documents import (
    DOCX_MIME,
    binary_garbage,
    corrupt_pdf,
    deep_html,
    deep_json,
    make_csv,
    make_docx,
    make_eml,
    make_html,
    make_json,
    make_markdown,
    make_pdf,
    make_pptx,
    make_text,
    make_xlsx,
    shared_stream_pdf,
    zip_bomb,
    zip_bomb_docx,
    zip_not_docx,
)

FOX = "The quick brown fox jumps over the lazy dog."
WHALE = "Call me Ishmael, said the narrator of the whale story."
RIVER = "A river runs through the middle of the old town."


def _reason(key: str, data: bytes, **kwargs: int) -> str:
    with pytest.raises(ParseError) as info:
        parse_document(key, data, **kwargs)
    assert info.value.reason == str(info.value)
    return info.value.reason


# --------------------------------------------------------------------------- dispatch


def test_supported_suffixes_are_exactly_the_contract() -> None:
    assert {
        *(".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".json"),
        *(".pptx", ".xlsx", ".csv", ".eml"),
    } == supported_suffixes()


@pytest.mark.parametrize("key", ["setup.exe", "archive.tar.gz", "Makefile", "notes.doc"])
def test_unsupported_suffix_is_rejected(key: str) -> None:
    assert "unsupported file type" in _reason(key, b"some content")


@pytest.mark.parametrize("suffix", sorted(supported_suffixes()))
def test_empty_input_is_rejected_for_every_format(suffix: str) -> None:
    assert "empty document" in _reason(f"doc{suffix}", b"")


@pytest.mark.parametrize("suffix", sorted(supported_suffixes()))
def test_binary_garbage_never_escapes_as_library_error(suffix: str) -> None:
    reason = _reason(f"junk{suffix}", binary_garbage())
    expected = {
        ".pdf": "corrupt PDF",
        ".docx": "not a zip archive",
        ".pptx": "not a zip archive",
        ".xlsx": "not a zip archive",
    }.get(suffix, "binary content")
    assert expected in reason


def test_suffix_dispatch_is_case_insensitive() -> None:
    parsed = parse_document("REPORTS/Q3.PDF", make_pdf([FOX]))
    assert parsed.mime_type == "application/pdf"
    assert FOX in parsed.text
    assert parsed.title == "Q3"


def test_title_falls_back_to_stem_of_nested_key() -> None:
    parsed = parse_document("bucket/folder/annual.report.txt", make_text([FOX]))
    assert parsed.title == "annual.report"


def test_parse_error_keeps_reason() -> None:
    error = ParseError("something specific")
    assert error.reason == "something specific"
    assert str(error) == "something specific"


def test_parsed_document_is_frozen() -> None:
    parsed = parse_document("a.txt", make_text([FOX]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.text = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("key", "data"),
    [
        ("a.txt", make_text([FOX])),
        ("a.md", make_markdown("T", [FOX])),
        ("a.html", make_html("T", [FOX], head_extra='<meta name="author" content="Ann">')),
        ("a.pdf", make_pdf([FOX], title="T", author="Ann")),
        ("a.docx", make_docx([FOX], title="T", author="Ann")),
        ("a.json", make_json({"title": "T", "body": FOX})),
    ],
)
def test_metadata_is_json_safe_scalars(key: str, data: bytes) -> None:
    parsed = parse_document(key, data)
    assert FOX in parsed.text
    for value in parsed.metadata.values():
        assert type(value) in (str, int, float, bool)
    assert json.loads(json.dumps(parsed.metadata)) == parsed.metadata


# --------------------------------------------------------------------------- txt


def test_txt_round_trip() -> None:
    parsed = parse_document("notes.txt", make_text([FOX, WHALE]))
    assert parsed == ParsedDocument(
        text=f"{FOX}\n\n{WHALE}",
        title="notes",
        mime_type="text/plain",
        metadata={"encoding": "utf-8"},
    )


def test_txt_normalizes_crlf_line_endings() -> None:
    parsed = parse_document("dos.txt", f"{FOX}\r\n\r\n{WHALE}\r\n".encode())
    assert parsed.text == f"{FOX}\n\n{WHALE}"


def test_txt_with_utf8_bom_drops_the_bom() -> None:
    parsed = parse_document("bom.txt", make_text(["Café crème " + FOX], encoding="utf-8-sig"))
    assert parsed.text == "Café crème " + FOX


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_txt_utf16_with_bom_is_decoded(encoding: str) -> None:
    text = "Grüße aus Köln. " + FOX
    data = make_text([text], encoding=encoding)
    if encoding != "utf-16":  # the endian-specific codecs write no BOM; add the right one
        data = "\ufeff".encode(encoding) + data
    parsed = parse_document("wide.txt", data)
    assert parsed.text == text
    assert parsed.metadata["encoding"] == "utf-16"


def test_txt_utf16_without_bom_is_binary_content() -> None:
    assert "binary content" in _reason("wide.txt", FOX.encode("utf-16-le"))


def test_txt_latin1_is_not_valid_utf8() -> None:
    assert "not valid UTF-8" in _reason("latin.txt", "Café au lait".encode("latin-1"))


def test_txt_with_nul_byte_is_binary_content() -> None:
    assert "binary content" in _reason("mixed.txt", FOX.encode() + b"\x00" + WHALE.encode())


def test_txt_whitespace_only_has_no_extractable_text() -> None:
    assert "no extractable text" in _reason("blank.txt", b" \n\t\r\n  \n")


# --------------------------------------------------------------------------- markdown


def test_markdown_keeps_source_and_uses_first_h1_as_title() -> None:
    source = f"Intro line.\n\n## Not the title\n\n# Real Title #\n\n**{FOX}**\n\n- {WHALE}\n"
    parsed = parse_document("guide.md", source.encode())
    assert parsed.title == "Real Title"
    assert parsed.mime_type == "text/markdown"
    assert f"**{FOX}**" in parsed.text
    assert f"- {WHALE}" in parsed.text
    assert "## Not the title" in parsed.text


def test_markdown_ignores_headings_in_code_fences_and_front_matter() -> None:
    source = (
        "---\n# yaml comment\nlayout: post\n---\n\n"
        "```python\n# a python comment\nprint(1)\n```\n\n"
        f"# Fenced Off\n\n{FOX}\n"
    )
    parsed = parse_document("post.markdown", source.encode())
    assert parsed.title == "Fenced Off"
    assert "# a python comment" in parsed.text


def test_markdown_without_h1_uses_stem() -> None:
    parsed = parse_document("docs/changelog.md", make_markdown(None, ["## 1.0", FOX]))
    assert parsed.title == "changelog"
    assert parsed.text == f"## 1.0\n\n{FOX}"


def test_markdown_rejects_binary_content() -> None:
    assert "binary content in markdown" in _reason("x.md", b"# Title\n\x00\x01\x02")


# --------------------------------------------------------------------------- html


def test_html_round_trip_with_title_tag() -> None:
    parsed = parse_document("page.html", make_html("Page Title", [FOX, WHALE], h1="Welcome"))
    assert parsed.title == "Page Title"
    assert parsed.mime_type == "text/html"
    assert parsed.text == f"Welcome\n\n{FOX}\n\n{WHALE}"
    assert parsed.metadata["language"] == "en"


def test_html_drops_script_style_and_noscript() -> None:
    data = make_html(
        "T",
        [FOX],
        head_extra="<style>body { color: red }</style><script>var headSecret = 1;</script>",
        body_extra=(
            "<script>document.write('bodySecret')</script>"
            "<noscript>Enable JavaScript please</noscript>"
            "<style>.x { display: none }</style>"
        ),
    )
    parsed = parse_document("page.htm", data)
    assert parsed.text == FOX
    for hidden in ("headSecret", "bodySecret", "color", "display", "Enable JavaScript"):
        assert hidden not in parsed.text


def test_html_title_falls_back_to_first_h1_then_stem() -> None:
    with_h1 = parse_document("a.html", make_html(None, [FOX], h1="Main  Heading"))
    assert with_h1.title == "Main Heading"
    without = parse_document("dir/landing.html", make_html(None, [FOX]))
    assert without.title == "landing"


def test_html_block_elements_become_paragraphs() -> None:
    body = (
        f"<div>{FOX}<span> still</span> <b>same</b> block</div>"
        f"<ul><li>first item</li><li>second<br>line</li></ul>"
        "<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ann</td><td>41</td></tr></table>"
        "<pre>  indented\n    code</pre>"
        "<p>tail &amp; end</p>"
    )
    parsed = parse_document("blocks.html", make_html("T", [], body_extra=body))
    assert parsed.text.split("\n\n") == [
        f"{FOX} still same block",
        "first item",
        "second\nline",
        "Name | Age",
        "Ann | 41",
        "  indented\n    code",
        "tail & end",
    ]


def test_html_collapses_source_whitespace() -> None:
    data = b"<html><body><p>  spread\n   over\n\tlines  </p></body></html>"
    assert parse_document("ws.html", data).text == "spread over lines"


def test_html_meta_author_is_metadata() -> None:
    data = make_html("T", [FOX], head_extra='<meta name="author" content=" Jane  Doe ">')
    assert parse_document("a.html", data).metadata["author"] == "Jane Doe"


def test_html_deeply_nested_does_not_crash() -> None:
    parsed = parse_document("deep.html", deep_html(depth=20_000))
    assert parsed.text == "Deeply buried sentence.\n\nAfter the nest."


def test_html_with_only_script_has_no_extractable_text() -> None:
    data = b"<html><head><title>Only code</title></head><body><script>x()</script></body></html>"
    assert "no extractable text" in _reason("app.html", data)


def test_html_not_utf8_is_rejected() -> None:
    data = "<html><body><p>Caf\u00e9</p></body></html>".encode("latin-1")
    assert "HTML is not valid UTF-8" in _reason("old.html", data)


# --------------------------------------------------------------------------- pdf


def test_pdf_round_trip_pages_joined_with_blank_lines() -> None:
    data = make_pdf([FOX, WHALE, RIVER], title="Annual Report", author="Ann Author")
    parsed = parse_document("report.pdf", data)
    assert parsed.text == f"{FOX}\n\n{WHALE}\n\n{RIVER}"
    assert parsed.title == "Annual Report"
    assert parsed.mime_type == "application/pdf"
    assert parsed.metadata == {"page_count": 3, "author": "Ann Author"}


def test_pdf_without_info_title_uses_stem() -> None:
    parsed = parse_document("scans/invoice-42.pdf", make_pdf([FOX]))
    assert parsed.title == "invoice-42"
    assert parsed.metadata["page_count"] == 1


def test_pdf_blank_pages_are_skipped_but_counted() -> None:
    parsed = parse_document("gaps.pdf", make_pdf([FOX, "", WHALE]))
    assert parsed.text == f"{FOX}\n\n{WHALE}"
    assert parsed.metadata["page_count"] == 3


def test_pdf_without_text_has_no_extractable_text() -> None:
    assert "no extractable text" in _reason("scan.pdf", make_pdf(["", ""], title="Scan"))


def test_corrupt_pdf_is_wrapped() -> None:
    assert _reason("broken.pdf", corrupt_pdf()).startswith("corrupt PDF: ")


def test_non_pdf_bytes_are_corrupt_pdf() -> None:
    assert _reason("fake.pdf", b"hello, I am not a PDF").startswith("corrupt PDF: ")


def test_encrypted_pdf_with_user_password_is_rejected() -> None:
    data = make_pdf([FOX], title="Secret", user_password="hunter2")
    assert "encrypted PDF" in _reason("locked.pdf", data)


def test_encrypted_pdf_with_empty_user_password_is_read() -> None:
    parsed = parse_document("owner-only.pdf", make_pdf([FOX], owner_password="owner"))
    assert parsed.text == FOX


@pytest.mark.parametrize("seed", range(12))
def test_mutated_pdf_yields_document_or_parse_error(seed: int) -> None:
    data = bytearray(make_pdf([FOX, WHALE], title="Fuzz"))
    rng = random.Random(seed)
    for _ in range(20):
        data[rng.randrange(len(data))] = rng.randrange(256)
    try:
        parsed = parse_document("fuzz.pdf", bytes(data))
    except ParseError as exc:
        assert exc.reason
    else:
        assert parsed.mime_type == "application/pdf"


# --------------------------------------------------------------------------- docx


def test_docx_round_trip() -> None:
    data = make_docx([FOX, WHALE], title="Design Doc", author="Dee Writer")
    parsed = parse_document("design.docx", data)
    assert parsed.text == f"{FOX}\n\n{WHALE}"
    assert parsed.title == "Design Doc"
    assert parsed.mime_type == DOCX_MIME
    assert parsed.metadata == {"author": "Dee Writer"}


def test_docx_title_falls_back_to_first_heading_then_stem() -> None:
    headed = parse_document("a.docx", make_docx([FOX], heading="Chapter One"))
    assert headed.title == "Chapter One"
    assert headed.text == f"Chapter One\n\n{FOX}"
    plain = parse_document("memos/memo.docx", make_docx([FOX]))
    assert plain.title == "memo"
    assert "author" not in plain.metadata


def test_docx_table_cells_are_extracted_in_order() -> None:
    data = make_docx([FOX], table=[["City", "River"], ["Paris", "Seine"]])
    parsed = parse_document("t.docx", data)
    assert parsed.text == f"{FOX}\n\nCity | River\nParis | Seine"


def test_docx_merged_cells_appear_once() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=2)
    merged = table.cell(0, 0).merge(table.cell(0, 1))
    merged.text = "Merged header"
    table.cell(1, 0).text = "left"
    table.cell(1, 1).text = "right"
    buffer = io.BytesIO()
    document.save(buffer)
    parsed = parse_document("merged.docx", buffer.getvalue())
    assert parsed.text == "Merged header\nleft | right"


def test_docx_empty_document_has_no_extractable_text() -> None:
    assert "no extractable text" in _reason("empty.docx", make_docx(["", "   "]))


def test_docx_non_zip_is_rejected() -> None:
    assert "corrupt DOCX: not a zip archive" in _reason("fake.docx", b"PK but not really")


def test_zip_that_is_not_docx_is_corrupt_docx() -> None:
    assert _reason("other.docx", zip_not_docx()).startswith("corrupt DOCX: ")


def test_truncated_docx_is_corrupt_docx() -> None:
    whole = make_docx([FOX, WHALE], title="Cut")
    assert _reason("cut.docx", whole[: len(whole) // 2]).startswith("corrupt DOCX")


def test_docx_zip_bomb_is_rejected_before_opening() -> None:
    bomb = zip_bomb_docx(expanded_bytes=5_000_000)
    reason = _reason("bomb.docx", bomb, max_expanded_bytes=1_000_000)
    assert "zip bomb" in reason
    assert "limit 1000000" in reason
    # The same package is otherwise valid: only the size check rejects it.
    parsed = parse_document("bomb.docx", bomb, max_expanded_bytes=10_000_000)
    assert parsed.text == "An innocent looking paragraph."


def test_docx_zip_bomb_default_limit_is_200_megabytes() -> None:
    assert "zip bomb" in _reason("bomb.docx", zip_bomb_docx(expanded_bytes=201_000_000))


@pytest.mark.parametrize("seed", range(12))
def test_mutated_docx_yields_document_or_parse_error(seed: int) -> None:
    data = bytearray(make_docx([FOX, WHALE], title="Fuzz", table=[["a", "b"]]))
    rng = random.Random(seed)
    for _ in range(8):
        data[rng.randrange(len(data))] = rng.randrange(256)
    try:
        parsed = parse_document("fuzz.docx", bytes(data))
    except ParseError as exc:
        assert "DOCX" in exc.reason
    else:
        assert parsed.mime_type == DOCX_MIME


# --------------------------------------------------------------------------- json


def test_json_is_flattened_to_path_lines() -> None:
    value = {
        "title": "Service Config",
        "owner": {"name": "Ann", "active": True, "quota": 2.5},
        "tags": ["alpha", "beta"],
        "retired": None,
        "notes": FOX,
    }
    parsed = parse_document("config.json", make_json(value))
    assert parsed.title == "Service Config"
    assert parsed.mime_type == "application/json"
    assert parsed.text.splitlines() == [
        "title: Service Config",
        "owner.name: Ann",
        "owner.active: true",
        "owner.quota: 2.5",
        "tags.0: alpha",
        "tags.1: beta",
        "retired: null",
        f"notes: {FOX}",
    ]
    assert parsed.metadata["top_level_type"] == "object"


def test_json_title_falls_back_to_name_then_stem() -> None:
    named = parse_document("a.json", make_json({"name": "Widget", "title": 7, "x": 1}))
    assert named.title == "Widget"
    plain = parse_document("data/records.json", make_json({"x": FOX}))
    assert plain.title == "records"


def test_json_top_level_list() -> None:
    parsed = parse_document("list.json", make_json([{"name": "a", "v": [1, 2]}, "loose"]))
    assert parsed.text.splitlines() == ["0.name: a", "0.v.0: 1", "0.v.1: 2", "1: loose"]
    assert parsed.title == "list"
    assert parsed.metadata["top_level_type"] == "array"


def test_json_top_level_scalar_is_its_own_text() -> None:
    assert parse_document("s.json", b'"just a string"').text == "just a string"


def test_json_with_utf8_bom() -> None:
    data = b"\xef\xbb\xbf" + make_json({"title": "Bom", "body": WHALE})
    assert parse_document("b.json", data).text == f"title: Bom\nbody: {WHALE}"


def test_invalid_json_is_rejected() -> None:
    assert "invalid JSON" in _reason("bad.json", b'{"title": "unterminated", ')


def test_empty_json_containers_have_no_extractable_text() -> None:
    assert "no extractable text" in _reason("e.json", b'{"a": {}, "b": []}')


def test_deeply_nested_json_is_rejected() -> None:
    assert "JSON too deeply nested" in _reason("deep.json", deep_json())


# --------------------------------------------------------------------------- pages (issue 16)


def test_pdf_keeps_each_page_apart() -> None:
    parsed = parse_document("three.pdf", make_pdf([FOX, "", WHALE, RIVER]))
    assert parsed.pages == (FOX, "", WHALE, RIVER)  # page n is pages[n - 1], blank pages kept
    assert parsed.text == f"{FOX}\n\n{WHALE}\n\n{RIVER}"


def test_pdf_page_content_over_the_budget_is_refused() -> None:
    """Pages sharing one content stream count it once per page: that is what extraction costs."""
    data = shared_stream_pdf(pages=3, text_ops=1_000)  # 17 KB of content, drawn by 3 pages
    assert "page content expands to over" in _reason("shared.pdf", data, max_expanded_bytes=40_000)
    assert parse_document("shared.pdf", data, max_expanded_bytes=60_000).pages[2].startswith("slow")


# --------------------------------------------------------------------------- pptx, xlsx, csv, eml


def test_pptx_slides_are_pages_with_their_notes() -> None:
    parsed = parse_document("deck.pptx", make_pptx([FOX, WHALE], title="Deck", notes=RIVER))
    assert parsed.pages == (f"Slide 1\n\n{FOX}\n\n{RIVER}", f"Slide 2\n\n{WHALE}")
    assert parsed.title == "Deck"
    assert parsed.metadata["slide_count"] == 2


def test_xlsx_rows_under_their_sheet() -> None:
    sheets = {"People": [["name", "city"], ["Ada", "London"], [None, 42]], "Blank": []}
    parsed = parse_document("book.xlsx", make_xlsx(sheets, title="Staff"))
    assert parsed.text == "# People\n\nname | city\n\nAda | London\n\n42"
    assert (parsed.title, parsed.metadata["sheet_count"], parsed.pages) == ("Staff", 2, ())


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_rows_name_their_columns(delimiter: str) -> None:
    rows = [["name", "city"], ["Ada", "London"], ["Bob", "Paris, TX"]]
    parsed = parse_document("people.csv", make_csv(rows, delimiter))
    assert parsed.text == "name: Ada | city: London\n\nname: Bob | city: Paris, TX"
    assert parsed.metadata["row_count"] == 2


def test_csv_that_is_not_text_is_refused() -> None:
    assert "not valid UTF-8" in _reason("latin.csv", "caf\xe9,1\n".encode("latin-1"))


def test_eml_subject_is_title_and_plain_body_preferred() -> None:
    parsed = parse_document("mail.eml", make_eml("Launch plan", FOX, html_body="<p>other</p>"))
    assert (parsed.title, parsed.text) == ("Launch plan", FOX)
    assert parsed.metadata["from"] == "Ada <ada@example.org>"


@pytest.mark.parametrize(
    ("key", "make", "member"),
    [
        ("deck.pptx", lambda: make_pptx([FOX]), "ppt/media/padding.bin"),
        ("book.xlsx", lambda: make_xlsx({"S": [[FOX]]}), "xl/media/padding.bin"),
    ],
)
def test_office_zip_bombs_and_truncations_are_refused(key: str, make, member: str) -> None:
    good = make()
    bomb = zip_bomb(good, member, 5_000_000)
    assert "rejected as a zip bomb" in _reason(key, bomb, max_expanded_bytes=1_000_000)
    assert parse_document(key, bomb, max_expanded_bytes=10_000_000).text  # only the size counts
    assert "corrupt" in _reason(key, good[: len(good) // 2])
