"""The chunker as it was before issue 23 (finding 4), kept as the oracle the bounded chunker must
equal, chunk for chunk, and as the peer the chunking bench measures it against.

It counts a whole text's tokens at once: a 1 MB CSV took 370 MB and a 7.6 MB one took `rag up`
to 5 GB. Do not use it to ingest anything.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence

from llama_index.core.node_parser import SentenceSplitter
from tokenizers import Tokenizer

from ingest.chunking import Chunk, chunk_hash
from ingest.parsers import ParsedDocument

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_CUT_ONE_IN = 3
_CHARS_PER_TOKEN = 16


def _is_cut_point(paragraph: str) -> bool:
    return int(chunk_hash(paragraph)[:8], 16) % _CUT_ONE_IN == 0


class ReferenceChunker:
    """`ingest.chunking.Chunker` at CHUNKER_VERSION 1, as main had it (commit ed823d6), with
    version 2's one change of grouping (a short group leads the next paragraph's split instead
    of standing alone); it takes the `tokenizers.Tokenizer` behind the model's fast tokenizer,
    as the Chunker now does."""

    def __init__(self, tokenizer: Tokenizer, chunk_size: int, chunk_overlap: int) -> None:
        backend = copy.deepcopy(tokenizer)
        backend.no_truncation()
        backend.no_padding()
        self._tokens = lambda text: len(backend.encode(text, add_special_tokens=False).ids)
        self._size = chunk_size
        self._min_size = chunk_size // 4
        self._max_chars = chunk_size * _CHARS_PER_TOKEN
        self._splitter = SentenceSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            tokenizer=lambda text: backend.encode(text, add_special_tokens=False).ids,
        )

    def chunks_of(self, parsed: ParsedDocument) -> list[Chunk]:
        """What ingestion made of a parsed document (ingest/documents.py at the same commit)."""
        if not any(ch.isalnum() for ch in parsed.text):
            return []
        return self.split_pages(parsed.pages) if parsed.pages else self.split(parsed.text)

    def split(self, text: str) -> list[Chunk]:
        unique = dict.fromkeys(self._pieces(text))
        return [Chunk(i, t, chunk_hash(t)) for i, t in enumerate(unique)]

    def split_pages(self, pages: Sequence[str]) -> list[Chunk]:
        first_page: dict[str, int] = {}
        for number, page in enumerate(pages, start=1):
            for piece in self._pieces(page):
                first_page.setdefault(piece, number)
        return [Chunk(i, t, chunk_hash(t), page) for i, (t, page) in enumerate(first_page.items())]

    def _pieces(self, text: str) -> list[str]:
        text = text.strip()
        if not text:
            return []
        pieces = [text] if self._tokens(text) <= self._size else self._group(text)
        pieces = [cut for piece in pieces for cut in self._cap_chars(piece)]
        return [p.strip() for p in pieces if p.strip()]

    def _cap_chars(self, piece: str) -> list[str]:
        cuts, start = [], 0
        while len(piece) - start > self._max_chars:
            space = piece.rfind(" ", start + self._max_chars // 2, start + self._max_chars)
            end = space if space > start else start + self._max_chars
            cuts.append(piece[start:end])
            start = end
        return [*cuts, piece[start:]]

    def _group(self, text: str) -> list[str]:
        pieces: list[str] = []
        group: list[str] = []
        size = 0

        def flush() -> None:
            nonlocal size
            if group:
                pieces.append("\n\n".join(group))
                group.clear()
                size = 0

        for paragraph in (p.strip() for p in _PARAGRAPH_BREAK.split(text)):
            if not paragraph:
                continue
            tokens = self._tokens(paragraph)
            if size + tokens > self._size and group and size < self._min_size:
                pieces.extend(self._splitter.split_text("\n\n".join([*group, paragraph])))
                group.clear()
                size = 0
                continue
            if tokens > self._size:
                flush()
                pieces.extend(self._splitter.split_text(paragraph))
                continue
            if size + tokens > self._size:
                flush()
            group.append(paragraph)
            size += tokens
            if size >= self._min_size and _is_cut_point(paragraph):
                flush()
        flush()
        return pieces
