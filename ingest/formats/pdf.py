"""PDF, page by page, so that a chunk never spans two pages and a hit cites its page."""

from __future__ import annotations

import io
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
    from pypdf import PdfReader


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


def _parse_pdf(data: bytes, max_expanded_bytes: int) -> Extracted:
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
            title = clean_title(info.title)
            add_if_set(metadata, "author", info.author)
            add_if_set(metadata, "subject", info.subject)
    except ParseError:
        raise
    except (FileNotDecryptedError, DependencyError) as exc:
        raise ParseError(f"encrypted PDF: {detail(exc)}") from exc
    except RecursionError as exc:
        raise ParseError("corrupt PDF: structure too deeply nested") from exc
    except Exception as exc:  # pypdf raises many unrelated types on malformed input
        raise ParseError(f"corrupt PDF: {detail(exc)}") from exc
    pages = [normalize_newlines(page) for page in pages]
    text = "\n\n".join(page for page in pages if page)
    return Extracted(text=text, title=title, metadata=metadata, pages=tuple(pages))


FORMATS = [Format("PDF", (".pdf",), "application/pdf", _parse_pdf)]
