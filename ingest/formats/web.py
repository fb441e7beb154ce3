"""HTML, laid out in paragraphs as a browser would show it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ingest.formats.base import (
    Extracted,
    Format,
    Metadata,
    ParseError,
    add_if_set,
    clean_title,
    decode_text,
)

if TYPE_CHECKING:
    from bs4 import BeautifulSoup
    from bs4.element import PageElement, Tag

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


def html_text(soup: BeautifulSoup) -> str:
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


def _parse_html(data: bytes, _limit: int) -> Extracted:
    from bs4 import BeautifulSoup

    markup, encoding = decode_text(data, "HTML")
    try:
        soup = BeautifulSoup(markup, "lxml")
        text = html_text(soup)
        title_tag = soup.find("title")
        title = clean_title(title_tag.get_text()) if title_tag else None
        if title is None:
            h1 = soup.find("h1")
            title = clean_title(h1.get_text(" ")) if h1 else None
        metadata: Metadata = {"encoding": encoding}
        for name in ("author", "description"):
            meta = soup.find("meta", attrs={"name": name})
            if meta is not None:
                add_if_set(metadata, name, meta.get("content"))
        html_tag = soup.find("html")
        if html_tag is not None:
            add_if_set(metadata, "language", html_tag.get("lang"))
    except RecursionError as exc:
        raise ParseError("HTML too deeply nested") from exc
    return Extracted(text=text, title=title, metadata=metadata)


FORMATS = [Format("HTML", (".html", ".htm"), "text/html", _parse_html)]
