"""Split document text into chunks measured in the embedding model's own tokens.

Chunks are edit-local: an edit to one paragraph changes only the chunks that contain it, so a
modified document re-embeds a few chunks instead of everything after the edit. Greedy packing
(what a plain sentence splitter does across a whole document) shifts every later boundary when one
paragraph changes length; here paragraphs are grouped with content-defined cut points, the way
rsync and restic chunk files, so boundaries re-synchronise right after an edit.

A paged document (PDF, slides) is chunked page by page: a chunk never spans two pages, so each
chunk can cite the one page it came from.

Chunking costs time and memory in proportion to the text, with small constants: the tokenizer
never sees more than a window of text at once. Tokenizing a whole text to learn whether it fits in
one chunk held about 600 bytes a token (the probe's 1 MB CSV took 330 MB, a 7.6 MB one took `rag up`
from 1 to 5 GB); counting stops at the first window that overflows a chunk instead. Ingestion
runs the chunker in the parser processes of `ingest.isolation`, under the same budgets as parsing.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

from tokenizers import Tokenizer

from core.embedding import Embedder
from ingest.parsers import Metadata, ParsedDocument

# Bump when a change to this module makes different chunks from the same text: every index built
# with the old version is then rebuilt (it is part of the generation fingerprint).
CHUNKER_VERSION = 2
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_CUT_ONE_IN = 3  # a paragraph ends a chunk with probability 1/3 once the chunk is big enough
# Characters a chunk may hold per token of its size. A word the tokenizer cannot split becomes one
# unknown token whatever its length, so a megabyte without spaces would count as a single token;
# English runs at 4 to 5 characters a token, and this leaves room for long words and URLs.
_CHARS_PER_TOKEN = 16
# Where a run of spaces or newlines starts: the tokenizer sees windows of text cut there, so each
# word and each run of spaces stays whole in one window. The tokenizer families of embedding
# models (BERT's WordPiece, byte-level BPE, metaspace unigram; tests/test_chunking.py tries each)
# split words at spaces before anything else, so a text's count is the sum of its windows'.
_WINDOW_CUT = re.compile(r"(?<![ \n])[ \n]")
# A window grows past `chunk_size * _CHARS_PER_TOKEN` characters to the end of a run without a
# space or newline, up to this: the tokenizer holds 60 to 100 bytes a character of what it is given.
_MAX_WINDOW_CHARS = 1 << 16


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    hash: str  # SHA-256 of the text: the embedding cache key and part of the point id
    page: int | None = None  # 1-based page (or slide) of a paged document


@dataclass(frozen=True)
class ChunkedDocument:
    """What ingestion needs of a document: its chunks and what its parser found beside its text.
    The text itself stays where it was chunked (a parser process)."""

    title: str
    mime_type: str
    metadata: Metadata
    chunks: list[Chunk]  # none when the text has no letter or digit


@dataclass(frozen=True)
class ChunkerConfig:
    """A chunker in a form another process can rebuild it from: the tokenizer as its JSON."""

    tokenizer_json: str
    chunk_size: int
    chunk_overlap: int

    @cached_property
    def digest(self) -> str:
        """Names the chunker across processes: a parser process keeps the ones it was sent."""
        spec = f"{self.chunk_size}/{self.chunk_overlap}/{self.tokenizer_json}"
        return hashlib.sha256(spec.encode()).hexdigest()


def chunk_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _is_cut_point(paragraph: str) -> bool:
    return int(chunk_hash(paragraph)[:8], 16) % _CUT_ONE_IN == 0


class Chunker:
    """Paragraph groups up to `chunk_size` tokens; llama-index's sentence splitter (with overlap)
    for paragraphs longer than that.

    Counting the model's tokens (not tiktoken's) keeps every chunk within what the model reads, so
    no chunk has text the dense vector never saw. Duplicate chunk texts within one document collapse
    to one chunk, since a point id is derived from the chunk's hash.
    """

    @classmethod
    def for_embedder(cls, embedder: Embedder, chunk_size: int | None, overlap: int) -> Chunker:
        """Chunks as long as the model's window, or `chunk_size` tokens if that is smaller."""
        window = embedder.max_tokens
        if chunk_size is not None and chunk_size > window:
            raise ValueError(
                f"chunk_size {chunk_size} exceeds the embedding model's window of {window} "
                "tokens: the model would never read the end of a chunk"
            )
        return cls(embedder.tokenizer.backend_tokenizer, chunk_size or window, overlap)

    @classmethod
    def from_config(cls, config: ChunkerConfig) -> Chunker:
        tokenizer = Tokenizer.from_str(config.tokenizer_json)
        return cls(tokenizer, config.chunk_size, config.chunk_overlap)

    def __init__(self, tokenizer: Tokenizer, chunk_size: int, chunk_overlap: int) -> None:
        """`tokenizer`: the `tokenizers.Tokenizer` behind the model's fast tokenizer."""
        # A copy: the model's own ships with truncation on, which would cap every count.
        self._tokenizer = copy.deepcopy(tokenizer)
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._size = chunk_size
        self._overlap = chunk_overlap
        self._min_size = chunk_size // 4
        self._max_chars = chunk_size * _CHARS_PER_TOKEN
        # Imported here, where chunking starts: llama-index takes about a second to import, and
        # what only reads this module's types (the status, every `rag` command) need not wait.
        from llama_index.core.node_parser import SentenceSplitter

        # It only takes the len() of what its tokenizer returns.
        self._splitter = SentenceSplitter(
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            tokenizer=lambda text: range(self._count(text)),
        )

    @cached_property
    def config(self) -> ChunkerConfig:
        return ChunkerConfig(self._tokenizer.to_str(), self._size, self._overlap)

    def warm_up(self) -> None:
        """Split one long paragraph: llama-index loads NLTK's sentence tokenizer on first use."""
        self._splitter.split_text("Warm. " * self._size)

    def chunk_document(self, parsed: ParsedDocument) -> ChunkedDocument:
        """A paged document page by page. Text with no letter or digit (blank, zero-width spaces,
        punctuation) has nothing to find: no chunks."""
        chunks: list[Chunk] = []
        if any(ch.isalnum() for ch in parsed.text):
            chunks = self.split_pages(parsed.pages) if parsed.pages else self.split(parsed.text)
        return ChunkedDocument(parsed.title, parsed.mime_type, parsed.metadata, chunks)

    def split(self, text: str) -> list[Chunk]:
        unique = dict.fromkeys(self._pieces(text))
        return [Chunk(i, t, chunk_hash(t)) for i, t in enumerate(unique)]

    def split_pages(self, pages: Sequence[str]) -> list[Chunk]:
        """Each page on its own; a text repeated on several pages (a running header) is one
        chunk, cited with the first page that holds it."""
        first_page: dict[str, int] = {}
        for number, page in enumerate(pages, start=1):
            for piece in self._pieces(page):
                first_page.setdefault(piece, number)
        return [Chunk(i, t, chunk_hash(t), page) for i, (t, page) in enumerate(first_page.items())]

    def _pieces(self, text: str) -> list[str]:
        text = text.strip()
        if not text:
            return []
        pieces = [text] if self._count(text) <= self._size else self._group(text)
        pieces = [cut for piece in pieces for cut in self._cap_chars(piece)]
        return [p.strip() for p in pieces if p.strip()]

    def _cap_chars(self, piece: str) -> list[str]:
        """Cut a piece longer than `_max_chars` into slices, at the last space when there is one."""
        cuts, start = [], 0  # offsets, not piece[end:]: re-copying the rest is quadratic
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

        for paragraph in (p.strip() for p in _paragraphs(text)):
            if not paragraph:
                continue
            tokens = self._count(paragraph)
            if size + tokens > self._size and group and size < self._min_size:
                # A short group (a title, a heading) that the next paragraph does not fit beside
                # leads that paragraph's split instead of becoming a chunk by itself, where BM25
                # matched it apart from the text it names (SciFact: 3,681 of 5,183 titles; BM25
                # 0.6699 -> 0.6812 NDCG@10, dense 0.6696 -> 0.6512, hybrid level, see
                # docs/benchmarks.md).
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

    def _count(self, text: str) -> int:
        """The tokens of `text` when it fits in a chunk; `_size + 1` for any text that does not.

        Each decision the chunker makes is whether a text fits, so counting stops at the first
        window that overflows, and a megabyte costs a window's tokens. A run of more than a window
        without a space or newline is tokenized whole, up to `_MAX_WINDOW_CHARS`: cutting it could
        cut a word, and the model counts a long word it cannot split as one token, however long.
        Only a longer run, which no document holds, is counted in slices; its count can then
        differ by a token a slice, which matters only when that lands it on the chunk's size.
        """
        count = 0
        for window in self._windows(text):
            count += len(self._tokenizer.encode(window, add_special_tokens=False))
            if count > self._size:
                return self._size + 1
        return count

    def _windows(self, text: str) -> Iterator[str]:
        """`text` in slices of at most `_max_chars`, each but the first starting where a run of
        spaces or newlines starts (or longer, when a run of text without one is)."""
        start = 0
        while len(text) - start > self._max_chars:
            end = start + self._max_chars
            cut = max(text.rfind(" ", start + 1, end), text.rfind("\n", start + 1, end))
            while cut > start and text[cut - 1] in " \n":  # back to where its run starts
                cut -= 1
            if cut <= start:
                longest = start + _MAX_WINDOW_CHARS
                found = _WINDOW_CUT.search(text, end, longest)
                cut = found.start() if found else min(longest, len(text))
            yield text[start:cut]
            start = cut
        yield text[start:]


def _paragraphs(text: str) -> Iterator[str]:
    """`_PARAGRAPH_BREAK.split(text)`, one paragraph at a time."""
    start = 0
    for found in _PARAGRAPH_BREAK.finditer(text):
        yield text[start : found.start()]
        start = found.end()
    yield text[start:]
