"""What every format module shares: the result of reading a document, its error, the
description of a format, and helpers for untrusted text and metadata.

Every failure a user can cause with a bad upload surfaces as `ParseError`, whose `reason` is
short enough to show in an ingestion status; no parser library exception escapes.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field

Scalar = str | int | float | bool
Metadata = dict[str, Scalar]

MAX_TITLE_CHARS = 500
MAX_REASON_DETAIL = 200


class ParseError(Exception):
    """A document that cannot be turned into text; `reason` is shown to users in status."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Extracted:
    """What a format's parser found; `ingest.parsers.parse_document` applies the shared
    fallbacks and checks."""

    text: str
    title: str | None = None
    metadata: Metadata = field(default_factory=dict)
    pages: tuple[str, ...] = ()


Parser = Callable[[bytes, int], Extracted]


@dataclass(frozen=True)
class Format:
    """One document format: the suffixes it is known by, and how it is read.

    `parse(data, max_expanded_bytes)` imports its library when it runs, so that listing the
    formats loads none. `version` counts changes of what the parser extracts from the same
    bytes: bumping it parses this format's documents again, and only theirs (documents of other
    formats and the index's other points stay as they are).
    """

    name: str  # as reasons name it: "PDF", "e-mail"
    suffixes: tuple[str, ...]
    mime_type: str
    parse: Parser
    version: int = 1


def detail(exc: BaseException) -> str:
    """Library messages can be empty or huge; users need something short and non-blank."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if len(message) > MAX_REASON_DETAIL:
        message = message[: MAX_REASON_DETAIL - 3] + "..."
    return message


def clean_title(raw: object) -> str | None:
    """Titles come from untrusted metadata: collapse whitespace and bound the length."""
    if not isinstance(raw, str):
        return None
    title = " ".join(raw.split())
    return title[:MAX_TITLE_CHARS] or None


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def add_if_set(metadata: Metadata, key: str, value: object) -> None:
    """Only plain non-empty strings are kept so metadata stays JSON-safe and meaningful."""
    if isinstance(value, str):
        cleaned = " ".join(value.split())
        if cleaned:
            metadata[key] = cleaned


def decode_text(data: bytes, fmt: str) -> tuple[str, str]:
    """Strict decoding: silently mangled text would poison search results downstream.

    Only UTF-8 (optionally with BOM) and BOM-marked UTF-16 are accepted. NUL bytes are the
    cheapest reliable sign that a binary file was uploaded under a text suffix.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ParseError(f"{fmt} is not valid UTF-16: {detail(exc)}") from exc
        encoding = "utf-16"
    else:
        if b"\x00" in data:
            raise ParseError(f"binary content in {fmt} file (NUL bytes)")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ParseError(f"{fmt} is not valid UTF-8: {detail(exc)}") from exc
        encoding = "utf-8"
    if "\x00" in text:
        raise ParseError(f"binary content in {fmt} file (NUL bytes)")
    return normalize_newlines(text), encoding
