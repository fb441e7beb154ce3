"""The served generation: an index and the model its points were embedded with, swapped as one.

Searches and ingestion hold a `ServedIndex` and a `ServedEmbedder`, which forward to the current
generation; a rebuild's switch replaces both at once. A query is embedded and then run in the same
thread, so the generation that embedded it is remembered for that thread and its engine call goes
to the same generation even when a switch lands in between: no search ever compares a vector of
one model with points of another. A retired generation stays open for a grace period, so searches
already holding it finish, and is then closed and its files removed.

A process that does not rebuild itself (an API replica beside a server collection rebuilt by a
worker) follows another process's switch: every `FOLLOW_CHECK_SECONDS` the first caller asks
`follow` whether another generation is served now, and switches to it the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.embedding import Embedder
from core.index.base import ChunkIndex
from core.index.query import EngineQuery, LegName
from core.types import Hit, IndexedChunk, TenantScope

log = logging.getLogger(__name__)
RETIRE_GRACE_SECONDS = 30.0
FOLLOW_CHECK_SECONDS = 5.0  # well inside the grace, so a followed switch never finds the old gone


@dataclass(eq=False)  # one generation is one object: `in` and `remove` compare identity
class Generation:
    index: ChunkIndex
    embedder: Embedder


class Serving:
    """`follow(current)`: the generation another process switched to, or None if none did."""

    def __init__(
        self,
        generation: Generation,
        follow: Callable[[Generation], Generation | None] | None = None,
    ) -> None:
        self._current = generation
        self._pinned = threading.local()
        self._timers: list[threading.Timer] = []
        self._retiring: list[Generation] = []  # switched away from, still open
        self._follow = follow
        self._following = threading.Lock()
        self._next_check = time.monotonic() + FOLLOW_CHECK_SECONDS

    @property
    def current(self) -> Generation:
        if self._follow is not None and time.monotonic() >= self._next_check:
            self._check_followed()
        return self._current

    def _check_followed(self) -> None:
        """One caller asks; the others go on with the current generation meanwhile."""
        if not self._following.acquire(blocking=False):
            return
        try:
            self._next_check = time.monotonic() + FOLLOW_CHECK_SECONDS
            assert self._follow is not None
            generation = self._follow(self._current)
            if generation is not None:
                log.info("following the switch of another process to a new index generation")
                self.switch(generation, lambda: None)
        except Exception:
            log.exception("checking for another process's switch failed; checking again later")
        finally:
            self._following.release()

    def pin(self) -> Generation:
        """The current generation, remembered for this thread's next engine call."""
        generation = self._current
        self._pinned.generation = generation
        return generation

    def take_pinned(self) -> Generation:
        """The generation this thread's last query was embedded by, if it is still open (a pin
        left by a request that failed between embedding and searching is ignored)."""
        pinned = getattr(self._pinned, "generation", None)
        self._pinned.generation = None
        if pinned is not None and (pinned is self._current or pinned in self._retiring):
            return pinned
        return self._current

    def switch(
        self,
        generation: Generation,
        on_retired: Callable[[], None],
        grace_seconds: float = RETIRE_GRACE_SECONDS,
    ) -> None:
        """Serve `generation`; close the old one after the grace period, then `on_retired()`."""
        old, self._current = self._current, generation
        self._retiring.append(old)
        timer = threading.Timer(grace_seconds, self._retire, (old, on_retired))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _retire(self, old: Generation, on_retired: Callable[[], None]) -> None:
        self._retiring.remove(old)
        try:
            old.index.close()
            on_retired()
        except Exception:
            log.exception("closing a retired index generation failed")

    def close(self) -> None:
        """Close the current generation and retire, now, any still in their grace period."""
        for timer in self._timers:
            if timer.is_alive():
                timer.cancel()
                self._retire(*timer.args)  # type: ignore[misc]
        self._timers.clear()
        self._current.index.close()


class ServedEmbedder:
    """The served generation's model, as searches and the served index's ingestion see it."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving

    @property
    def _model(self) -> Embedder:
        return self._serving.current.embedder

    @property
    def model_name(self) -> str:
        return self._model.model_name

    @property
    def vectors_key(self) -> str:
        return self._model.vectors_key

    @property
    def backend(self) -> str:
        return self._model.backend

    @property
    def quantize(self) -> str | None:
        return self._model.quantize

    @property
    def fallback_reason(self) -> str:
        return self._model.fallback_reason

    @property
    def query_prefix(self) -> str:
        return self._model.query_prefix

    @property
    def dim(self) -> int:
        return self._model.dim

    @property
    def tokenizer(self) -> Any:
        return self._model.tokenizer

    @property
    def max_tokens(self) -> int:
        return self._model.max_tokens

    @property
    def texts_embedded(self) -> int:
        return self._model.texts_embedded

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._model.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self._serving.pin().embedder.embed_query(text)


class ServedIndex(ChunkIndex):
    """Forwards every call to the served generation's index; closing it closes the generation."""

    def __init__(self, serving: Serving) -> None:
        self._serving = serving

    @property
    def _index(self) -> ChunkIndex:
        return self._serving.current.index

    @property
    def dialect(self) -> Any:  # type: ignore[override]
        return self._index.dialect

    def search(self, query: EngineQuery) -> list[Hit]:
        if query.dense is not None:
            return self._serving.take_pinned().index.search(query)
        return self._index.search(query)

    def upsert(self, chunks: Sequence[IndexedChunk]) -> None:
        self._index.upsert(chunks)

    def delete(self, ids: Sequence[str]) -> None:
        self._index.delete(ids)

    def delete_document(self, scope: TenantScope, doc_id: str) -> None:
        self._index.delete_document(scope, doc_id)

    def chunk_ids(self, scope: TenantScope, doc_id: str) -> set[str]:
        return self._index.chunk_ids(scope, doc_id)

    def document_ids(self) -> dict[str, int]:
        return self._index.document_ids()

    def _leg_request(self, query: EngineQuery, leg: LegName, limit: int) -> Any:
        return self._index._leg_request(query, leg, limit)

    def _run(self, requests: list[Any]) -> list[list[Hit]]:
        return self._index._run(requests)

    def retrieve(
        self, scope: TenantScope, ids: Sequence[str], fields: Sequence[str] | None = None
    ) -> list[Hit]:
        return self._index.retrieve(scope, ids, fields)

    def scroll(
        self, scope: TenantScope | None, fields: Sequence[str], doc_id: str | None = None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        return self._index.scroll(scope, fields, doc_id)

    def _scroll_page(self, flt: Any, fields: Sequence[str], offset: Any) -> tuple[list[Any], Any]:
        return self._index._scroll_page(flt, fields, offset)

    def count(self, scope: TenantScope | None = None) -> int:
        return self._index.count(scope)

    def generation_record(self) -> dict[str, Any] | None:
        return self._index.generation_record()

    def set_generation_record(self, record: dict[str, Any]) -> None:
        self._index.set_generation_record(record)

    def vector_status(self) -> dict[str, int]:
        return self._index.vector_status()

    def optimize(self) -> bool:
        return self._index.optimize()

    def close(self) -> None:
        self._serving.close()
