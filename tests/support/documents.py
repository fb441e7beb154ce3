"""Generators for real test documents, as bytes, shared by every test that ingests files.

The documents are produced by the real format libraries (fpdf2 for PDF, python-docx for DOCX,
python-pptx, openpyxl, the standard library's csv and email)
so parsers are exercised on what users actually upload, not on hand-written stubs. Output is
deterministic: fixed dates and seeded randomness, so failures reproduce byte for byte.

fpdf2's built-in Helvetica font covers Latin-1 only: keep PDF text to Latin-1 characters.
"""

from __future__ import annotations

import datetime as _dt
import html
import io
import json
import random
import zipfile

import docx
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

FIXED_DATE = _dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=_dt.UTC)
_ZIP_DATE = (2024, 1, 2, 3, 4, 6)

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def make_pdf(
    text_pages: list[str],
    title: str | None = None,
    *,
    author: str | None = None,
    user_password: str | None = None,
    owner_password: str | None = None,
) -> bytes:
    """A real PDF with one page per entry (an empty string gives a page without text).

    Passing `user_password` encrypts it so it cannot be opened without that password; passing
    only `owner_password` encrypts it with an empty user password, which readers open freely.
    """
    pdf = FPDF()
    pdf.set_creation_date(FIXED_DATE)
    pdf.set_font("Helvetica", size=12)
    if title is not None:
        pdf.set_title(title)
    if author is not None:
        pdf.set_author(author)
    for page_text in text_pages:
        pdf.add_page()
        if page_text:
            pdf.multi_cell(0, 8, page_text)
    if user_password is not None or owner_password is not None:
        pdf.set_encryption(
            owner_password=owner_password or "owner-secret",
            user_password=user_password or "",
            encryption_method=EncryptionMethod.RC4,
        )
    return bytes(pdf.output())


def corrupt_pdf() -> bytes:
    """A real PDF cut in half: valid header, no cross-reference table or trailer."""
    whole = make_pdf(["This PDF is truncated and cannot be read."], title="Broken")
    return whole[: len(whole) // 2]


def make_docx(
    paragraphs: list[str],
    title: str | None = None,
    *,
    author: str | None = None,
    heading: str | None = None,
    table: list[list[str]] | None = None,
) -> bytes:
    """A real DOCX: optional Heading 1, then the paragraphs, then an optional table.

    `title` goes into the core properties. python-docx's template names its author
    "python-docx"; it is cleared unless `author` is given so tests see only what they set.
    """
    document = docx.Document()
    properties = document.core_properties
    properties.title = title or ""
    properties.author = author or ""
    properties.last_modified_by = ""
    properties.created = FIXED_DATE.replace(tzinfo=None)
    properties.modified = FIXED_DATE.replace(tzinfo=None)
    if heading is not None:
        document.add_heading(heading, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=max(len(row) for row in table))
        for row_cells, row in zip(grid.rows, table, strict=True):
            for cell, value in zip(row_cells.cells, row, strict=False):
                cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bomb_docx(expanded_bytes: int = 50_000_000) -> bytes:
    """A valid DOCX plus an unreferenced member of zeros that inflates to `expanded_bytes`."""
    base = make_docx(["An innocent looking paragraph."], title="Bomb")
    return zip_bomb(base, "word/media/padding.bin", expanded_bytes)


def zip_not_docx() -> bytes:
    """A well-formed zip archive that is not an Office package."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("readme.txt", date_time=_ZIP_DATE), "just a zip")
    return buffer.getvalue()


def make_html(
    title: str | None,
    body_paragraphs: list[str],
    *,
    h1: str | None = None,
    head_extra: str = "",
    body_extra: str = "",
) -> bytes:
    """A complete UTF-8 HTML page; text is escaped, `*_extra` is inserted as raw markup."""
    title_tag = f"<title>{html.escape(title)}</title>" if title is not None else ""
    heading = f"<h1>{html.escape(h1)}</h1>\n" if h1 is not None else ""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in body_paragraphs)
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"{title_tag}\n{head_extra}\n</head>\n<body>\n{heading}{body}\n{body_extra}\n"
        "</body>\n</html>\n"
    )
    return page.encode("utf-8")


def deep_html(depth: int = 20_000, text: str = "Deeply buried sentence.") -> bytes:
    """Hostile nesting: far deeper than Python's default recursion limit."""
    page = (
        "<html><body>" + "<div>" * depth + f"<p>{html.escape(text)}</p>" + "</div>" * depth
    ) + "<p>After the nest.</p></body></html>"
    return page.encode("utf-8")


def make_markdown(title: str | None, paragraphs: list[str]) -> bytes:
    """Markdown with an optional `# title` heading followed by blank-line separated paragraphs."""
    parts = ([f"# {title}"] if title is not None else []) + list(paragraphs)
    return ("\n\n".join(parts) + "\n").encode("utf-8")


def make_text(paragraphs: list[str], encoding: str = "utf-8") -> bytes:
    """Plain text; `utf-8-sig` adds a UTF-8 BOM and `utf-16` a UTF-16 BOM (Python's codecs)."""
    return "\n\n".join(paragraphs).encode(encoding)


def make_json(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2).encode("utf-8")


def deep_json(depth: int = 100_000) -> bytes:
    """Nested arrays deep enough to exhaust the JSON decoder's recursion limit."""
    return ("[" * depth + "]" * depth).encode("ascii")


def binary_garbage(n: int = 4096, seed: int = 1234) -> bytes:
    """Deterministic random bytes: not a zip, not a PDF, contains NULs and invalid UTF-8."""
    return random.Random(seed).randbytes(n)


def make_pptx(slides: list[str], title: str | None = None, *, notes: str | None = None) -> bytes:
    """A real PPTX with one title-and-content slide per entry; `notes` go on the first slide."""
    from pptx import Presentation

    presentation = Presentation()
    presentation.core_properties.title = title or ""
    presentation.core_properties.author = ""
    presentation.core_properties.last_modified_by = ""
    presentation.core_properties.created = FIXED_DATE.replace(tzinfo=None)
    presentation.core_properties.modified = FIXED_DATE.replace(tzinfo=None)
    layout = presentation.slide_layouts[1]
    for n, text in enumerate(slides, start=1):
        slide = presentation.slides.add_slide(layout)
        slide.shapes.title.text = f"Slide {n}"
        slide.placeholders[1].text = text
        if n == 1 and notes:
            slide.notes_slide.notes_text_frame.text = notes
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]], title: str | None = None) -> bytes:
    """A real XLSX with one worksheet per entry, rows as given."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    workbook.properties.title = title
    workbook.properties.creator = None
    workbook.properties.created = FIXED_DATE.replace(tzinfo=None)
    workbook.properties.modified = FIXED_DATE.replace(tzinfo=None)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def make_csv(rows: list[list[str]], delimiter: str = ",") -> bytes:
    import csv

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


def make_eml(subject: str, body: str, *, html_body: str | None = None) -> bytes:
    """A real RFC 5322 message from the standard library; `html_body` adds an HTML alternative."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Ada <ada@example.org>"
    message["To"] = "team@example.org"
    message["Date"] = "Tue, 02 Jan 2024 03:04:05 +0000"
    message.set_content(body)
    if html_body is not None:
        message.add_alternative(html_body, subtype="html")
    return message.as_bytes()


def zip_bomb(base: bytes, member: str, expanded_bytes: int = 50_000_000) -> bytes:
    """`base` (an Office package) plus an unreferenced `member` of zeros inflating to
    `expanded_bytes`: everything else is sound, so only a size check can reject it."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(base)) as source,
        zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
    ):
        for info in source.infolist():
            target.writestr(info, source.read(info.filename))
        info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
        info.compress_type = zipfile.ZIP_DEFLATED
        chunk = bytes(1 << 20)
        with target.open(info, "w", force_zip64=True) as padding:
            remaining = expanded_bytes
            while remaining > 0:
                step = min(remaining, len(chunk))
                padding.write(chunk[:step])
                remaining -= step
    return buffer.getvalue()


def _serialized_pdf(objects: list[bytes]) -> bytes:
    """A PDF file of these objects (numbered from 1, the first the catalog), with its xref."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def raw_pdf(contents: list[bytes]) -> bytes:
    """A PDF with one page per content stream (uncompressed), in Helvetica."""
    pages = len(contents)
    kids = " ".join(f"{3 + n} 0 R" for n in range(pages))
    font = 3 + 2 * pages
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
    ]
    for n in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {3 + pages + n} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
    for content in contents:
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _serialized_pdf(objects)


def text_pdf(pages: list[str]) -> bytes:
    """A PDF of these pages' text, one line of text a line of the page: written directly (fpdf2
    takes 70 ms a page to lay text out), for inputs of megabytes."""

    def line(text: str) -> bytes:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        return b"(" + escaped.encode("latin-1", "replace") + b") Tj T*\n"

    return raw_pdf(
        [
            b"BT /F1 10 Tf 12 TL 40 760 Td\n" + b"".join(map(line, page.split("\n"))) + b"ET"
            for page in pages
        ]
    )


def shared_stream_pdf(pages: int = 3, text_ops: int = 20_000) -> bytes:
    """A small PDF whose pages all draw one large, highly compressible content stream of
    `text_ops` text-showing operators: cheap to store, slow to extract text from (the shape of
    issue 13's finding 13, 24 KB on disk and 87 s of CPU; 20,000 operators take pypdf about 7 s
    on an idle core and the file is under 2 KB)."""
    import zlib

    content = b"BT /F1 12 Tf 72 720 Td\n" + b"(slow) Tj 1 0 Td\n" * text_ops + b"ET\n"
    stream = zlib.compress(content, 9)
    kids = " ".join(f"{4 + n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    font = 4 + pages
    for _ in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return _serialized_pdf(objects)
