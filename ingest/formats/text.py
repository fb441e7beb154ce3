"""Plain text and markdown."""

from __future__ import annotations

import re

from ingest.formats.base import Extracted, Format, decode_text


def _parse_txt(data: bytes, _limit: int) -> Extracted:
    text, encoding = decode_text(data, "text")
    return Extracted(text=text.strip(), metadata={"encoding": encoding})


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


def _parse_markdown(data: bytes, _limit: int) -> Extracted:
    """The markdown source is kept verbatim: chunkers and LLM prompts read it well as-is."""
    text, encoding = decode_text(data, "markdown")
    text = text.strip()
    return Extracted(text=text, title=_markdown_title(text), metadata={"encoding": encoding})


FORMATS = [
    Format("text", (".txt",), "text/plain", _parse_txt),
    Format("markdown", (".md", ".markdown"), "text/markdown", _parse_markdown),
]
