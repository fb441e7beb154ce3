"""E-mail messages (.eml): the subject is the title, the plain-text body preferred."""

from __future__ import annotations

import email
import email.policy

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
from ingest.formats.web import html_text


def _parse_eml(data: bytes, _limit: int) -> Extracted:
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
                content = html_text(BeautifulSoup(content, "lxml"))
            text = normalize_newlines(content).strip()
        metadata: Metadata = {}
        for name in ("from", "to", "date"):
            add_if_set(metadata, name, str(message.get(name, "") or ""))
        title = clean_title(str(message.get("subject", "") or ""))
    except ParseError:
        raise
    except Exception as exc:  # the email package raises assorted header and payload errors
        raise ParseError(f"invalid e-mail: {detail(exc)}") from exc
    return Extracted(text=text, title=title, metadata=metadata)


FORMATS = [Format("e-mail", (".eml",), "message/rfc822", _parse_eml)]
