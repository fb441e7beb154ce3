"""The payload every chunk carries and how each field is indexed.

Both backends create exactly these payload indexes, so filters and BM25 behave the same on the
embedded shard and on a Qdrant server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.settings import IndexSettings

DENSE_VECTOR = "dense"
TEXT_FIELD = "text"
META_PREFIX = "meta."

IndexKind = Literal["keyword", "integer", "float", "datetime", "text"]

PAYLOAD_INDEXES: dict[str, IndexKind] = {
    "tenant_id": "keyword",
    "doc_id": "keyword",
    "source": "keyword",
    "doc_type": "keyword",
    "mime_type": "keyword",
    "author": "keyword",
    "title": "keyword",
    "size": "integer",
    "modified_at": "datetime",
    TEXT_FIELD: "text",
}

# Fields whose values get their own HNSW links, so a search filtered on one value stays a graph
# walk. Each such field costs the engine about one more pass over every point when it builds the
# vector index, so only the tenant, which every query filters on, has them; other filters are
# planned by the engine from their cardinality (payload index scan or filtered graph walk).
HNSW_PAYLOAD_FIELDS = frozenset({"tenant_id"})

# Fields a user may filter on: every indexed field but the text itself, plus sidecar metadata.
FILTERABLE_FIELDS: dict[str, IndexKind] = {
    k: v for k, v in PAYLOAD_INDEXES.items() if k not in (TEXT_FIELD, "tenant_id")
}


@dataclass(frozen=True)
class TextIndexConfig:
    """How the BM25 text index tokenizes: the settings' bm25_* fields, no defaults of its own.

    Each backend binds it to its own client's parameters (`core.index.edge._text_index`,
    `core.index.server._text_index`), so both tokenize the same way or refuse to start.
    """

    lowercase: bool
    ascii_folding: bool
    stemmer: str | None
    stopwords: str | None

    @classmethod
    def from_settings(cls, index: IndexSettings) -> TextIndexConfig:
        return cls(
            lowercase=index.bm25_lowercase,
            ascii_folding=index.bm25_ascii_folding,
            stemmer=index.bm25_stemmer,
            stopwords=index.bm25_stopwords,
        )

    @property
    def plain(self) -> bool:
        """Lowercased words only: the one tokenization qdrant-client's local mode can score."""
        return self.lowercase and not (self.ascii_folding or self.stemmer or self.stopwords)
