"""Word, PowerPoint and Excel documents, read with the python-docx family of libraries; each
archive is checked against the expanded-size budget before a library inflates it. Slides are
pages, as PDF pages are."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ingest.formats.base import (
    Extracted,
    Format,
    Metadata,
    ParseError,
    add_if_set,
    clean_title,
    detail,
    normalize_newlines,
)

if TYPE_CHECKING:
    from docx.document import Document as DocxDocument
    from docx.table import Table
    from pptx.shapes.base import BaseShape

_DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_PPTX_MIME = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
_XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def check_zip_archive(data: bytes, max_expanded_bytes: int, fmt: str) -> None:
    """Runs before the Office library, which would inflate every member into memory unchecked.

    Declared sizes are a sound bound: zipfile stops inflating a member at its declared size.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError(f"corrupt {fmt}: not a zip archive ({detail(exc)})") from exc
    except Exception as exc:  # truncated central directories raise assorted errors
        raise ParseError(f"corrupt {fmt}: {detail(exc)}") from exc
    expanded = sum(member.file_size for member in members)
    if expanded > max_expanded_bytes:
        raise ParseError(
            f"{fmt} rejected as a zip bomb: expands to {expanded} bytes "
            f"(limit {max_expanded_bytes})"
        )


# --------------------------------------------------------------------------- docx


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
            title = clean_title(paragraph.text)
            if title:
                return title
    return None


def _parse_docx(data: bytes, max_expanded_bytes: int) -> Extracted:
    import docx

    check_zip_archive(data, max_expanded_bytes, "DOCX")
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = _docx_blocks(document)
        properties = document.core_properties
        title = clean_title(properties.title) or _docx_heading(document)
        metadata: Metadata = {}
        add_if_set(metadata, "author", properties.author)
        add_if_set(metadata, "subject", properties.subject)
    except RecursionError as exc:
        raise ParseError("corrupt DOCX: structure too deeply nested") from exc
    except Exception as exc:  # python-docx/lxml raise many types on malformed packages
        raise ParseError(f"corrupt DOCX: {detail(exc)}") from exc
    text = "\n\n".join(normalize_newlines(block) for block in blocks)
    return Extracted(text=text, title=title, metadata=metadata)


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


def _parse_pptx(data: bytes, max_expanded_bytes: int) -> Extracted:
    """One page per slide: its shapes' text, then its speaker notes."""
    from pptx import Presentation

    check_zip_archive(data, max_expanded_bytes, "PPTX")
    try:
        presentation = Presentation(io.BytesIO(data))
        slides: list[str] = []
        for slide in presentation.slides:
            texts = _pptx_shape_texts(slide.shapes)
            if slide.has_notes_slide:
                notes = slide.notes_slide.notes_text_frame
                if notes is not None and notes.text.strip():
                    texts.append(notes.text.strip())
            slides.append(normalize_newlines("\n\n".join(texts)))
        properties = presentation.core_properties
        title = clean_title(properties.title)
        metadata: Metadata = {"slide_count": len(slides)}
        add_if_set(metadata, "author", properties.author)
        add_if_set(metadata, "subject", properties.subject)
    except RecursionError as exc:
        raise ParseError("corrupt PPTX: structure too deeply nested") from exc
    except Exception as exc:  # python-pptx/lxml raise many types on malformed packages
        raise ParseError(f"corrupt PPTX: {detail(exc)}") from exc
    text = "\n\n".join(slide for slide in slides if slide)
    return Extracted(text=text, title=title, metadata=metadata, pages=tuple(slides))


# --------------------------------------------------------------------------- xlsx


def _cell_text(value: object) -> str:
    return "" if value is None else " ".join(str(value).split())


def _parse_xlsx(data: bytes, max_expanded_bytes: int) -> Extracted:
    """Each sheet under a `# <sheet>` line, one paragraph per row, cells joined by ` | `.

    Cached values are read (what a user sees), not formulas; read-only mode streams the rows.
    """
    from openpyxl import load_workbook

    check_zip_archive(data, max_expanded_bytes, "XLSX")
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
            title = clean_title(properties.title)
            metadata: Metadata = {"sheet_count": len(workbook.worksheets)}
            add_if_set(metadata, "author", properties.creator)
            add_if_set(metadata, "subject", properties.subject)
        finally:
            workbook.close()
    except RecursionError as exc:
        raise ParseError("corrupt XLSX: structure too deeply nested") from exc
    except Exception as exc:  # openpyxl raises many types on malformed packages
        raise ParseError(f"corrupt XLSX: {detail(exc)}") from exc
    return Extracted(text="\n\n".join(sheets), title=title, metadata=metadata)


FORMATS = [
    Format("DOCX", (".docx",), _DOCX_MIME, _parse_docx),
    Format("PPTX", (".pptx",), _PPTX_MIME, _parse_pptx),
    Format("XLSX", (".xlsx",), _XLSX_MIME, _parse_xlsx),
]
