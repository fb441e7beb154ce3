"""Turn uploaded documents into plain text for chunking and indexing.

Every failure a user can cause with a bad upload surfaces as `ParseError`, whose `reason` is
short enough to show in an ingestion status; no parser library exception escapes.

Paged formats (PDF pages, PowerPoint slides) keep each page's text apart, so that chunks never
span two pages and every hit can cite its page. Office formats are read with the maintained
libraries of the python-docx family (python-docx, python-pptx, openpyxl), CSV and e-mail with the
standard library; every zip-based format is checked against the expanded-size budget before a
library inflates it. Time and memory budgets are enforced around these parsers by
`ingest.isolation`, which runs them in a separate process.
"""

from __future__ import annotations

import codecs
import csv
import email
import email.policy
import io
import json
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from core.settings import IngestSettings

# Each format's library is imported by the function that reads the format (together they take a
# third of a second to import): a parser process loads what its documents need, and what only
# reads this module's types (chunking, the status, every `rag` command) loads none of them.
if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import PageElement, Tag
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from pptx.shapes.base import BaseShape
    from pypdf import PdfReader

Scalar = str | int | float | bool
Metadata = dict[str, Scalar]

# Bump whenever a parser change extracts different text or chunks from the same bytes: indexes
# built with an older version are then rebuilt (it is part of the generation fingerprint).
# 2: page-aware PDF and slides; pptx, xlsx, csv, eml.
PARSER_VERSION = 2
# For callers without settings (tests, scripts); ingestion passes its settings' value.
DEFAULT_MAX_EXPANDED_BYTES: int = IngestSettings.model_fields["parse_max_expanded_bytes"].default
_MAX_TITLE_CHARS = 500
_MAX_REASON_DETAIL = 200


@dataclass(frozen=True)
class ParsedDocument:
    text: str
    title: str
    mime_type: str
    metadata: Metadata
    # The text of each page (PDF) or slide (PPTX), in order: page n is pages[n - 1]. Empty for
    # formats without pages; `text` is then the whole document.
    pages: tuple[str, ...] = ()


class ParseError(Exception):
    """A document that cannot be turned into text; `reason` is shown to users in status."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _Extracted:
    """What a format parser found; `parse_document` applies the shared fallbacks and checks."""

    text: str
    title: str | None = None
    metadata: Metadata = field(default_factory=dict)
    pages: tuple[str, ...] = ()


# --------------------------------------------------------------------------- helpers


def _detail(exc: BaseException) -> str:
    """Library messages can be empty or huge; users need something short and non-blank."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if len(message) > _MAX_REASON_DETAIL:
        message = message[: _MAX_REASON_DETAIL - 3] + "..."
    return message


def _clean_title(raw: object) -> str | None:
    """Titles come from untrusted metadata: collapse whitespace and bound the length."""
    if not isinstance(raw, str):
        return None
    title = " ".join(raw.split())
    return title[:_MAX_TITLE_CHARS] or None


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _add_if_set(metadata: Metadata, key: str, value: object) -> None:
    """Only plain non-empty strings are kept so metadata stays JSON-safe and meaningful."""
    if isinstance(value, str):
        cleaned = " ".join(value.split())
        if cleaned:
            metadata[key] = cleaned


def _decode_text(data: bytes, fmt: str) -> tuple[str, str]:
    """Strict decoding: silently mangled text would poison search results downstream.

    Only UTF-8 (optionally with BOM) and BOM-marked UTF-16 are accepted. NUL bytes are the
    cheapest reliable sign that a binary file was uploaded under a text suffix.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ParseError(f"{fmt} is not valid UTF-16: {_detail(exc)}") from exc
        encoding = "utf-16"
    else:
        if b"\x00" in data:
            raise ParseError(f"binary content in {fmt} file (NUL bytes)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(f"{fmt} is not valid UTF-8: {_detail(exc)}") from exc
        encoding = "utf-8"
    if "\x00" in text:
        raise ParseError(f"binary content in {fmt} file (NUL bytes)")
    return _normalize_newlines(text), encoding


# --------------------------------------------------------------------------- plain text


def _parse_txt(data: bytes, _limit: int) -> _Extracted:
    text, encoding = _decode_text(data, "text")
    return _Extracted(text=text.strip(), metadata={"encoding": encoding})


# --------------------------------------------------------------------------- markdown

_MD_H1 = re.compile(r"^ {0,3}#[ \t]+(?P<title>.*?)(?:[ \t]+#+)?[ \t]*$")
_MD_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def _markdown_title(text: str) -> str | None:
    """Skips front matter and fenced code, where `# ` lines are comments, not headings."""
    lines = text.split("\n")
    start = 0
    if lines and lines[0].strip() == "---":
        for index in range(1, len(lines)):
            if lines[index].strip() in ("---", "..."):
                start = index + 1
                break
    fence: str | None = None
    for line in lines[start:]:
        fence_match = _MD_FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker
            elif marker == fence:
                fence = None
            continue
        if fence is None:
            heading = _MD_H1.match(line)
            if heading and heading.group("title").strip():
                return heading.group("title")
    return None


def _parse_markdown(data: bytes, _limit: int) -> _Extracted:
    """The markdown source is kept verbatim: chunkers and LLM prompts read it well as-is."""
    text, encoding = _decode_text(data, "markdown")
    text = text.strip()
    return _Extracted(text=text, title=_markdown_title(text), metadata={"encoding": encoding})


# --------------------------------------------------------------------------- html

_HTML_SKIP = frozenset({"script", "style", "noscript", "template", "title", "head"})
_HTML_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "dd", "details",
        "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form",
        "h1", "h2", "h3", "h4", "h5", "h6", "header", "hgroup", "hr", "html", "legend", "li",
        "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "tfoot",
        "thead", "tr", "ul",
    }
)  # fmt: skip
_HTML_CELLS = frozenset({"td", "th"})
_SPACES = re.compile(r"[^\S\n]+")
_WHITESPACE = re.compile(r"\s+")


class _HtmlTextCollector:
    """Builds blank-line separated paragraphs from block elements, the way a browser lays out."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self._parts: list[str] = []
        self._has_text = False
        self._preformatted = False

    def flush(self) -> None:
        raw = "".join(self._parts)
        self._parts = []
        self._has_text = False
        if self._preformatted:
            text = raw.strip("\n").rstrip()
        else:
            lines = (_SPACES.sub(" ", line).strip() for line in raw.split("\n"))
            text = "\n".join(line for line in lines if line)
        if text.strip():
            self.paragraphs.append(text)

    def start(self, name: str) -> None:
        if name in _HTML_BLOCKS:
            self.flush()
            self._preformatted = name == "pre"
        elif name == "br":
            self._parts.append("\n")
        elif name in _HTML_CELLS and self._has_text:
            self._parts.append(" | ")

    def end(self, name: str) -> None:
        if name in _HTML_BLOCKS:
            self.flush()
            self._preformatted = False

    def text(self, value: str) -> None:
        self._has_text = self._has_text or bool(value.strip())
        self._parts.append(value if self._preformatted else _WHITESPACE.sub(" ", value))


def _html_text(soup: BeautifulSoup) -> str:
    """Iterative walk: recursion over the tree would overflow on hostile nesting depth."""
    from bs4 import NavigableString, Tag
    from bs4.element import PreformattedString

    collector = _HtmlTextCollector()
    stack: list[tuple[Tag | None, Iterator[PageElement]]] = [(None, iter(soup.contents))]
    while stack:
        tag, children = stack[-1]
        node = next(children, None)
        if node is None:
            stack.pop()
            if tag is not None:
                collector.end(tag.name)
            continue
        if isinstance(node, Tag):
            if node.name in _HTML_SKIP:
                continue
            collector.start(node.name)
            stack.append((node, iter(node.contents)))
        elif isinstance(node, NavigableString) and not isinstance(node, PreformattedString):
            collector.text(str(node))
    collector.flush()
    return "\n\n".join(collector.paragraphs)


def _parse_html(data: bytes, _limit: int) -> _Extracted:
    from bs4 import BeautifulSoup

    markup, encoding = _decode_text(data, "HTML")
    try:
        soup = BeautifulSoup(markup, "lxml")
        text = _html_text(soup)
        title_tag = soup.find("title")
        title = _clean_title(title_tag.get_text()) if title_tag else None
        if title is None:
            h1 = soup.find("h1")
            title = _clean_title(h1.get_text(" ")) if h1 else None
        metadata: Metadata = {"encoding": encoding}
        for name in ("author", "description"):
            meta = soup.find("meta", attrs={"name": name})
            if meta is not None:
                _add_if_set(metadata, name, meta.get("content"))
        html_tag = soup.find("html")
        if html_tag is not None:
            _add_if_set(metadata, "language", html_tag.get("lang"))
    except RecursionError as exc:
        raise ParseError("HTML too deeply nested") from exc
    return _Extracted(text=text, title=title, metadata=metadata)


# --------------------------------------------------------------------------- pdf


def _check_pdf_content(reader: PdfReader, max_expanded_bytes: int) -> None:
    """Text extraction runs over every page's decompressed content stream, so their total size is
    what it costs. Pages may share one stream: it counts once per page that draws it, since
    extraction reads it once per page (three pages sharing an 8 MB stream cost 24 MB of work).
    """
    expanded = 0
    for page in reader.pages:
        contents = page.get_contents()
        expanded += len(contents.get_data()) if contents is not None else 0
        if expanded > max_expanded_bytes:
            raise ParseError(
                f"PDF rejected: page content expands to over {max_expanded_bytes} bytes "
                f"(limit {max_expanded_bytes})"
            )


def _parse_pdf(data: bytes, max_expanded_bytes: int) -> _Extracted:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("encrypted PDF: a password is required")
        _check_pdf_content(reader, max_expanded_bytes)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        info = reader.metadata
        metadata: Metadata = {"page_count": len(pages)}
        title = None
        if info is not None:
            title = _clean_title(info.title)
            _add_if_set(metadata, "author", info.author)
            _add_if_set(metadata, "subject", info.subject)
    except ParseError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise ParseError(f"encrypted PDF: {_detail(exc)}") from exc
    except RecursionError as exc:
        raise ParseError("corrupt PDF: structure too deeply nested") from exc
    except Exception as exc:  # pypdf raises many unrelated types on malformed input
        raise ParseError(f"corrupt PDF: {_detail(exc)}") from exc
    pages = [_normalize_newlines(page) for page in pages]
    text = "\n\n".join(page for page in pages if page)
    return _Extracted(text=text, title=title, metadata=metadata, pages=tuple(pages))


# --------------------------------------------------------------------------- docx


def _check_zip_archive(data: bytes, max_expanded_bytes: int, fmt: str) -> None:
    """Runs before the Office library, which would inflate every member into memory unchecked.

    Declared sizes are a sound bound: zipfile stops inflating a member at its declared size.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError(f"corrupt {fmt}: not a zip archive ({_detail(exc)})") from exc
    except Exception as exc:  # truncated central directories raise assorted errors
        raise ParseError(f"corrupt {fmt}: {_detail(exc)}") from exc
    expanded = sum(member.file_size for member in members)
    if expanded > max_expanded_bytes:
        raise ParseError(
            f"{fmt} rejected as a zip bomb: expands to {expanded} bytes "
            f"(limit {max_expanded_bytes})"
        )


def _docx_blocks(document: DocxDocument) -> list[str]:
    """Body paragraphs and tables in reading order, including content controls (w:sdt)."""
    from docx.oxml.ns import qn
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    body = document.element.body
    blocks: list[str] = []
    pending = [iter(body.iterchildren())]
    while pending:
        element = next(pending[-1], None)
        if element is None:
            pending.pop()
        elif element.tag == qn("w:p"):
            text = Paragraph(element, document).text.strip()
            if text:
                blocks.append(text)
        elif element.tag == qn("w:tbl"):
            table_text = _docx_table_text(Table(element, document))
            if table_text:
                blocks.append(table_text)
        elif element.tag == qn("w:sdt"):
            content = element.find(qn("w:sdtContent"))
            if content is not None:
                pending.append(iter(content.iterchildren()))
    return blocks


def _docx_table_text(table: Table) -> str:
    """One line per row, cells joined by ` | `; merged cells are emitted once."""
    from docx.oxml.ns import qn
    from docx.text.paragraph import Paragraph

    seen: set[object] = set()  # lxml elements, not ids: proxies die and their ids get reused
    lines: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            if cell._tc in seen:
                continue
            seen.add(cell._tc)
            # Nested tables are flattened into their cell: every descendant paragraph counts.
            paragraphs = (Paragraph(p, cell).text.strip() for p in cell._tc.iter(qn("w:p")))
            text = " ".join(p for p in paragraphs if p)
            if text:
                cells.append(text)
        if cells:
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _docx_heading(document: DocxDocument) -> str | None:
    for paragraph in document.paragraphs:
        style = paragraph.style
        name = style.name if style is not None else None
        if name and (name.startswith("Heading") or name == "Title"):
            title = _clean_title(paragraph.text)
            if title:
                return title
    return None


def _parse_docx(data: bytes, max_expanded_bytes: int) -> _Extracted:
    import docx

    _check_zip_archive(data, max_expanded_bytes, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = _docx_blocks(document)
        properties = document.core_properties
        title = _clean_title(properties.title) or _docx_heading(document)
        metadata: Metadata = {}
        _add_if_set(metadata, "author", properties.author)
        _add_if_set(metadata, "subject", properties.subject)
    except RecursionError as exc:
        raise ParseError("corrupt DOCX: structure too deeply nested") from exc
    except Exception as exc:  # python-docx/lxml raise many types on malformed packages
        raise ParseError(f"corrupt DOCX: {_detail(exc)}") from exc
    text = "\n\n".join(_normalize_newlines(block) for block in blocks)
    return _Extracted(text=text, title=title, metadata=metadata)


# --------------------------------------------------------------------------- pptx


def _pptx_shape_texts(shapes: Iterable[BaseShape]) -> list[str]:
    """Text frames and tables of a slide's shapes, group shapes flattened, in z-order."""
    from pptx.shapes.group import GroupShape

    texts: list[str] = []
    pending = [iter(shapes)]
    while pending:
        shape = next(pending[-1], None)
        if shape is None:
            pending.pop()
        elif isinstance(shape, GroupShape):
            pending.append(iter(shape.shapes))
        elif getattr(shape, "has_table", False):
            rows = (
                " | ".join(c.text.strip() for c in row.cells if c.text.strip())
                for row in shape.table.rows
            )
            table = "\n".join(row for row in rows if row)
            if table:
                texts.append(table)
        elif getattr(shape, "has_text_frame", False):
            text = shape.text_frame.text.strip()
            if text:
                texts.append(text)
    return texts


def _parse_pptx(data: bytes, max_expanded_bytes: int) -> _Extracted:
    """One page per slide: its shapes' text, then its speaker notes."""
    from pptx import Presentation

    _check_zip_archive(data, max_expanded_bytes, "PPTX")
    try:
        presentation = Presentation(io.BytesIO(data))
        slides: list[str] = []
        for slide in presentation.slides:
            texts = _pptx_shape_texts(slide.shapes)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    texts.append(notes.text.strip())
            slides.append(_normalize_newlines("\n\n".join(texts)))
        properties = presentation.core_properties
        title = _clean_title(properties.title)
        metadata: Metadata = {"slide_count": len(slides)}
        _add_if_set(metadata, "author", properties.author)
        _add_if_set(metadata, "subject", properties.subject)
    except RecursionError as exc:
        raise ParseError("corrupt PPTX: structure too deeply nested") from exc
    except Exception as exc:  # python-pptx/lxml raise many types on malformed packages
        raise ParseError(f"corrupt PPTX: {_detail(exc)}") from exc
    text = "\n\n".join(slide for slide in slides if slide)
    return _Extracted(text=text, title=title, metadata=metadata, pages=tuple(slides))


# --------------------------------------------------------------------------- xlsx


def _cell_text(value: object) -> str:
    return "" if value is None else " ".join(str(value).split())


def _parse_xlsx(data: bytes, max_expanded_bytes: int) -> _Extracted:
    """Each sheet under a `# <sheet>` line, one paragraph per row, cells joined by ` | `.

    Cached values are read (what a user sees), not formulas; read-only mode streams the rows.
    """
    from openpyxl import load_workbook

    _check_zip_archive(data, max_expanded_bytes, "XLSX")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        try:
            sheets: list[str] = []
            for sheet in workbook.worksheets:
                rows = []
                for row in sheet.iter_rows(values_only=True):
                    cells = [text for text in map(_cell_text, row) if text]
                    if cells:
                        rows.append(" | ".join(cells))
                if rows:
                    sheets.append("\n\n".join([f"# {sheet.title}", *rows]))
            properties = workbook.properties
            title = _clean_title(properties.title)
            metadata: Metadata = {"sheet_count": len(workbook.worksheets)}
            _add_if_set(metadata, "author", properties.creator)
            _add_if_set(metadata, "subject", properties.subject)
        finally:
            workbook.close()
    except RecursionError as exc:
        raise ParseError("corrupt XLSX: structure too deeply nested") from exc
    except Exception as exc:  # openpyxl raises many types on malformed packages
        raise ParseError(f"corrupt XLSX: {_detail(exc)}") from exc
    return _Extracted(text="\n\n".join(sheets), title=title, metadata=metadata)


# --------------------------------------------------------------------------- csv


def _parse_csv(data: bytes, _limit: int) -> _Extracted:
    """One paragraph per row, `column: value` pairs named by the header row, so a search for a
    column name and value finds the row; the first row is taken as the header."""
    source, encoding = _decode_text(data, "CSV")
    try:
        dialect = csv.Sniffer().sniff(source[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [
            row for row in csv.reader(io.StringIO(source), dialect) if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise ParseError(f"invalid CSV: {_detail(exc)}") from exc
    if not rows:
        return _Extracted(text="", metadata={"encoding": encoding})
    header, records = (
        ([" ".join(name.split()) for name in rows[0]], rows[1:]) if len(rows) > 1 else ([], rows)
    )
    lines = []
    for row in records:
        pairs = []
        for index, value in enumerate(row):
            value = " ".join(value.split())
            name = header[index] if index < len(header) else ""
            if value:
                pairs.append(f"{name}: {value}" if name else value)
        if pairs:
            lines.append(" | ".join(pairs))
    metadata: Metadata = {"encoding": encoding, "row_count": len(records)}
    return _Extracted(text="\n\n".join(lines), metadata=metadata)


# --------------------------------------------------------------------------- eml


def _parse_eml(data: bytes, _limit: int) -> _Extracted:
    """The subject is the title; the plain-text body is preferred over the HTML one."""
    from bs4 import BeautifulSoup

    if b"\x00" in data:
        raise ParseError("binary content in e-mail file (NUL bytes)")
    try:
        message = email.message_from_bytes(data, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
        text = ""
        if body is not None:
            content = body.get_content()
            if isinstance(content, bytes):
                raise ParseError("e-mail body is not text")
            if body.get_content_subtype() == "html":
                content = _html_text(BeautifulSoup(content, "lxml"))
            text = _normalize_newlines(content).strip()
        metadata: Metadata = {}
        for name in ("from", "to", "date"):
            _add_if_set(metadata, name, str(message.get(name, "") or ""))
        title = _clean_title(str(message.get("subject", "") or ""))
    except ParseError:
        raise
    except Exception as exc:  # the email package raises assorted header and payload errors
        raise ParseError(f"invalid e-mail: {_detail(exc)}") from exc
    return _Extracted(text=text, title=title, metadata=metadata)


# --------------------------------------------------------------------------- json


def _json_scalar(value: object) -> str:
    """JSON spelling for literals so `null`/`true` read the same as in the source."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _flatten_json(value: object) -> list[str]:
    """`path.to.key: value` lines let keyword search match both field names and values.

    Iterative so that nesting depth is bounded only by what json.loads accepted.
    """
    lines: list[str] = []
    pending: list[tuple[str, object]] = [("", value)]
    while pending:
        path, node = pending.pop()
        if isinstance(node, dict):
            items = [(str(key), child) for key, child in node.items()]
        elif isinstance(node, list):
            items = [(str(index), child) for index, child in enumerate(node)]
        else:
            rendered = _json_scalar(node)
            lines.append(f"{path}: {rendered}" if path else rendered)
            continue
        pending.extend(
            (f"{path}.{name}" if path else name, child) for name, child in reversed(items)
        )
    return lines


def _json_type_name(value: object) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


def _parse_json(data: bytes, _limit: int) -> _Extracted:
    source, encoding = _decode_text(data, "JSON")
    try:
        value = json.loads(source)
    except RecursionError as exc:
        raise ParseError("JSON too deeply nested") from exc
    except ValueError as exc:
        raise ParseError(f"invalid JSON: {_detail(exc)}") from exc
    title = None
    if isinstance(value, dict):
        title = _clean_title(value.get("title")) or _clean_title(value.get("name"))
    metadata: Metadata = {"encoding": encoding, "top_level_type": _json_type_name(value)}
    return _Extracted(text="\n".join(_flatten_json(value)).strip(), title=title, metadata=metadata)


# --------------------------------------------------------------------------- dispatch

_DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

_Parser = Callable[[bytes, int], _Extracted]

_FORMATS: dict[str, tuple[str, str, _Parser]] = {
    ".txt": ("text", "text/plain", _parse_txt),
    ".md": ("markdown", "text/markdown", _parse_markdown),
    ".markdown": ("markdown", "text/markdown", _parse_markdown),
    ".html": ("HTML", "text/html", _parse_html),
    ".htm": ("HTML", "text/html", _parse_html),
    ".pdf": ("PDF", "application/pdf", _parse_pdf),
    ".docx": ("DOCX", _DOCX_MIME, _parse_docx),
    ".json": ("JSON", "application/json", _parse_json),
    ".pptx": ("PPTX", _PPTX_MIME, _parse_pptx),
    ".xlsx": ("XLSX", _XLSX_MIME, _parse_xlsx),
    ".csv": ("CSV", "text/csv", _parse_csv),
    ".eml": ("e-mail", "message/rfc822", _parse_eml),
}

SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_FORMATS)


def parse_document(
    key: str, data: bytes, *, max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES
) -> ParsedDocument:
    """Dispatch on the key's suffix (case-insensitive); every failure becomes `ParseError`.

    `max_expanded_bytes` bounds the total uncompressed size of an Office archive (DOCX, PPTX,
    XLSX) and of a PDF's page content streams.
    """
    path = PurePosixPath(key)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        shown = suffix or "(none)"
        raise ParseError(f"unsupported file type {shown}")
    fmt, mime_type, parser = _FORMATS[suffix]
    if not data:
        raise ParseError("empty document (0 bytes)")
    try:
        extracted = parser(data, max_expanded_bytes)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError(f"{fmt} too deeply nested") from exc
    except MemoryError:
        raise  # the parser process's memory budget: reported as such by ingest.isolation
    except Exception as exc:  # last line of defence: a library failure is the document's fault
        raise ParseError(f"could not parse {fmt}: {_detail(exc)}") from exc
    if not extracted.text.strip():
        raise ParseError("no extractable text")
    return ParsedDocument(
        text=extracted.text,
        title=extracted.title or path.stem or path.name,
        mime_type=mime_type,
        metadata=dict(extracted.metadata),
        pages=extracted.pages,
    )
