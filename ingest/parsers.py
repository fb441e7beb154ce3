"""Turn uploaded documents into plain text for chunking and indexing: the formats are read by
the modules of `ingest/formats/`, and this module applies what is common to all of them (the
title's fallback, the checks for empty and unreadable documents, errors a user can read).

Paged formats (PDF pages, PowerPoint slides) keep each page's text apart, so that chunks never
span two pages and every hit can cite its page. Time and memory budgets are enforced around
parsing by `ingest.isolation`, which runs it in a separate process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from core.settings import IngestSettings
from ingest.formats import format_of, registry
from ingest.formats.base import Metadata, ParseError, detail

# Bump whenever what every format shares changes the text or chunks made from the same bytes:
# indexes built with an older version are then rebuilt (it is part of the generation
# fingerprint). A change of one format's parser bumps that format's own `version` instead, and
# only its documents are parsed again.
# 2: page-aware PDF and slides; pptx, xlsx, csv, eml.
PARSER_VERSION = 2
# For callers without settings (tests, scripts); ingestion passes its settings' value.
DEFAULT_MAX_EXPANDED_BYTES: int = IngestSettings.model_fields["parse_max_expanded_bytes"].default

__all__ = ["Metadata", "ParseError", "ParsedDocument", "parse_document", "supported_suffixes"]


@dataclass(frozen=True)
class ParsedDocument:
    text: str
    title: str
    mime_type: str
    metadata: Metadata
    # The text of each page (PDF) or slide (PPTX), in order: page n is pages[n - 1]. Empty for
    # formats without pages; `text` is then the whole document.
    pages: tuple[str, ...] = ()


def supported_suffixes() -> frozenset[str]:
    return frozenset(registry())


def parse_document(
    key: str, data: bytes, *, max_expanded_bytes: int = DEFAULT_MAX_EXPANDED_BYTES
) -> ParsedDocument:
    """Dispatch on the key's suffix (case-insensitive); every failure becomes `ParseError`.

    `max_expanded_bytes` bounds the total uncompressed size of an Office archive (DOCX, PPTX,
    XLSX) and of a PDF's page content streams.
    """
    path = PurePosixPath(key)
    fmt = format_of(key)
    if fmt is None:
        shown = path.suffix.lower() or "(none)"
        raise ParseError(f"unsupported file type {shown}")
    if not data:
        raise ParseError("empty document (0 bytes)")
    try:
        extracted = fmt.parse(data, max_expanded_bytes)
    except ParseError:
        raise
    except RecursionError as exc:
        raise ParseError(f"{fmt.name} too deeply nested") from exc
    except MemoryError:
        raise  # the parser process's memory budget: reported as such by ingest.isolation
    except Exception as exc:  # last line of defence: a library failure is the document's fault
        raise ParseError(f"could not parse {fmt.name}: {detail(exc)}") from exc
    if not extracted.text.strip():
        raise ParseError("no extractable text")
    return ParsedDocument(
        text=extracted.text,
        title=extracted.title or path.stem or path.name,
        mime_type=fmt.mime_type,
        metadata=dict(extracted.metadata),
        pages=extracted.pages,
    )
