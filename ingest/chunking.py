"""Split document text into overlapping chunks measured in the embedding model's own tokens."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from llama_index.core.node_parser import SentenceSplitter


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    text: str
    hash: str  # SHA-256 of the text: the embedding cache key and part of the point id


def chunk_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Chunker:
    """llama-index's sentence splitter, sized by the embedder's tokenizer.

    Counting the model's tokens (not tiktoken's) keeps a 512-token chunk within what a 512-token
    model reads. Duplicate chunk texts within one document collapse to one chunk, since a point id
    is derived from the chunk's hash.
    """

    def __init__(self, hf_tokenizer: Any, chunk_size: int, chunk_overlap: int) -> None:
        # The fast tokenizer ships with truncation on, which would cap every count at max_length.
        backend = copy.deepcopy(hf_tokenizer.backend_tokenizer)
        backend.no_truncation()
        backend.no_padding()
        self._count = lambda text: backend.encode(text, add_special_tokens=False).ids
        self._chunk_size = chunk_size
        self._splitter = SentenceSplitter(
            chunk_size=chunk_size, chunk_overlap=chunk_overlap, tokenizer=self._count
        )

    def split(self, text: str) -> list[Chunk]:
        text = text.strip()
        if not text:
            return []
        # Most documents fit in one chunk; skip the splitter's sentence machinery for them.
        pieces = (
            [text]
            if len(self._count(text)) <= self._chunk_size
            else self._splitter.split_text(text)
        )
        unique = dict.fromkeys(p.strip() for p in pieces if p.strip())
        return [Chunk(i, t, chunk_hash(t)) for i, t in enumerate(unique)]
