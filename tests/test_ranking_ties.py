"""The same query returns the same order every time, and from every build of the same corpus:
exact ties are ordered by document id, then chunk position, in every leg and in both fusion
paths (the index's and the Python one that takes an outside leg in)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from core.embedding import Embedder
from core.index.ranking import rrf
from core.runtime import Runtime
from core.types import Hit, IndexedChunk, TenantScope, chunk_point_id
from ingest.bucket import LocalBucket
from ingest.service import Ingestion
from retrieval.hybrid import RetrievalConfig
from retrieval.search import RankedChunk, SearchRequest, SearchService
from serving.platform import Platform
from tests.support.engine import engine_query, open_backend
from tests.support.settings import make_settings

SUBJECTS = ["foxes", "rivers", "coffee", "badges", "solar panels", "whales"]
PLACES = ["in the forest", "near the town", "at the harbour", "on the hill", "by the lake"]
QUERIES = ["foxes near the town", "coffee at the harbour", "whales on the hill", "solar lake"]
ACME = TenantScope("acme")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Runtime]:
    """30 one-chunk documents sharing words, so dense and BM25 each find many and disagree."""
    tmp = tmp_path_factory.mktemp("ties")
    bucket = tmp / "bucket"
    for n, (subject, place) in enumerate(itertools.product(SUBJECTS, PLACES)):
        path = bucket / "tenants" / "acme" / f"doc{n:02}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Note {n}: {subject} {place}, seen on day {n * 7 % 31}.\n")
    runtime = Runtime(make_settings(tmp), embedder)
    assert Ingestion(runtime, LocalBucket(bucket)).run().added == 30
    yield runtime
    runtime.close()


class LastChunkLeg:
    """A test double for an outside leg (`retrieval.search.Leg`): it ranks one chunk, which
    sends hybrid searches down the Python-fused path."""

    name = "graph"

    def __init__(self, runtime: Runtime) -> None:
        self._last = max(pid for pid, _ in runtime.index.scroll(ACME, ()))

    def rank(self, scope: TenantScope, query: str, limit: int) -> list[str]:
        return [self._last]


def _tie_groups(chunks: list[RankedChunk]) -> list[list[tuple[str, int]]]:
    """The (document, chunk position) of each group of equal scores."""
    groups = [
        [(c.payload["doc_id"], c.payload["ordinal"]) for c in group]
        for _, group in itertools.groupby(chunks, key=lambda c: c.score)
    ]
    return [g for g in groups if len(g) > 1]


@pytest.mark.parametrize("outside_leg", [False, True], ids=["engine-fused", "python-fused"])
def test_repeated_queries_return_one_order_with_ties_by_document(
    runtime: Runtime, outside_leg: bool
) -> None:
    legs = [LastChunkLeg(runtime)] if outside_leg else []
    config = RetrievalConfig(8, 60, runtime.settings.retrieval.tie_fetch_limit)
    service = SearchService(runtime.index, runtime.embedder, config, legs)
    ties = 0
    for query, top_k in itertools.product(QUERIES, (3, 6, 10)):
        req = SearchRequest(query, top_k=top_k)
        runs = [[c.id for c in service.search(ACME, req).chunks] for _ in range(4)]
        assert all(r == runs[0] for r in runs), query
        chunks = service.search(ACME, req).chunks
        for group in _tie_groups(chunks):
            assert group == sorted(group), (query, top_k)
            ties += 1
    assert ties > 0  # the corpus does produce exact ties, so the order above was tested


def test_rrf_orders_ties_by_document_then_chunk_whatever_the_leg_order() -> None:
    """Point ids are hashes: ordered by them, ties would follow no order a reader can see."""
    a1, a0, b0, c0 = (
        Hit(pid, 1.0, {"doc_id": doc, "ordinal": n})
        for pid, doc, n in (("1", "a", 1), ("2", "a", 0), ("3", "b", 0), ("0", "c", 0))
    )
    one = rrf({"dense": [c0, a1], "bm25": [a0, b0]}, k=60)
    other = rrf({"bm25": [a0, b0], "dense": [c0, a1]}, k=60)
    assert [h.id for h in one] == [h.id for h in other] == ["2", "0", "1", "3"]


# Identical texts under different names: every leg scores a group's members exactly alike (same
# words, same vector, same entities), so only a tie-break orders them. log.txt's two chunks tie
# in BM25 alone (the same words matched in chunks of one length).
TWINS = "Marta Kowalski leads the Zephyr Initiative from Quillon Harbour."
ECHO = "Ferries leave Quillon Harbour for Ostrava at dawn, says the Zephyr Initiative."
LOG = "\n\n".join(f"Harbour log. {' '.join([animal] * 150)}" for animal in ("cat", "dog"))
TIED_CORPUS = {
    "echo-b.txt": ECHO,
    "echo-y.txt": ECHO,
    "log.txt": LOG,
    "misc-c.txt": "Quillon Harbour has a lighthouse and a fish market.",
    "misc-x.txt": "Marta Kowalski once lived in Gdansk near the harbour.",
    "twin-a.txt": TWINS,
    "twin-m.txt": TWINS,
    "twin-z.txt": TWINS,
}
TIED_QUERIES = ["Marta Kowalski Zephyr Initiative", "Quillon Harbour ferries", "harbour log"]


Ranking = list[tuple[str, int, float]]  # (document, chunk position, score) of each hit


def _rankings(
    tmp: Path, backend: str, embedder: Embedder, rounds: list[list[str]]
) -> dict[tuple[str, int, str], Ranking]:
    """Every mode's ranking of every query, top 2 and 4, on the corpus ingested in `rounds`.

    Three candidates per leg cut the three twins apart in every leg, so hybrid's fused scores
    depend on which twin each leg placed first."""
    settings = make_settings(tmp, backend, candidates_per_leg=3, graph_in_hybrid=True)
    bucket = tmp / "bucket"
    rankings: dict[tuple[str, int, str], Ranking] = {}
    with closing(Platform(Runtime(settings, embedder))) as platform:
        for names in rounds:
            for name in names:
                path = bucket / "tenants" / "acme" / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(TIED_CORPUS[name])
            assert platform.ingestion_of(LocalBucket(bucket)).run().added == len(names)
        assert len(platform.runtime.index.chunk_ids(ACME, "tenants/acme/log.txt")) == 2
        config = RetrievalConfig.from_settings(settings.retrieval)
        without_graph = SearchService(platform.runtime.index, embedder, config)
        services = {"hybrid": without_graph, "hybrid+graph": platform.search}
        services |= {mode: platform.search for mode in ("bm25", "dense", "graph")}
        for query, top_k, (name, service) in itertools.product(
            TIED_QUERIES, (2, 4), services.items()
        ):
            mode = name.removesuffix("+graph")
            found = service.search(ACME, SearchRequest(query, top_k, mode)).chunks  # type: ignore[arg-type]
            rankings[query, top_k, name] = [
                (c.payload["doc_id"], c.payload["ordinal"], c.score) for c in found
            ]
    return rankings


def test_a_rebuild_in_another_order_ranks_alike(
    tmp_path: Path, backend: str, embedder: Embedder
) -> None:
    """The same corpus ingested in two orders ranks alike in every mode (hybrid fused by the
    index, and in Python with the graph leg), ties ordered by document, then chunk."""
    names = sorted(TIED_CORPUS)
    first = _rankings(tmp_path / "one", backend, embedder, [names[::2], names[1::2]])
    again = _rankings(tmp_path / "two", backend, embedder, [names[1::2], names[::2]])
    # Scores are not compared: a text's vector depends on the batch it was embedded in, in its
    # last bits, and the two builds batched differently.
    assert {k: [hit[:2] for hit in r] for k, r in first.items()} == {
        k: [hit[:2] for hit in r] for k, r in again.items()
    }
    ties = 0
    for ranking in (*first.values(), *again.values()):
        for _, group in itertools.groupby(ranking, key=lambda hit: hit[2]):
            keys = [hit[:2] for hit in group]
            assert keys == sorted(keys)
            ties += len(keys) > 1
    assert ties > 0


@pytest.mark.parametrize("tie_fetch_limit", [1_000, 20], ids=["whole", "capped"])
def test_a_tie_longer_than_the_margin_is_fetched_whole_up_to_the_limit(
    tmp_path: Path, backend: str, embedder: Embedder, tie_fetch_limit: int
) -> None:
    """40 identical chunks, written last document first: the top 3 of every mode are the first
    three documents, which the engine alone ranks anywhere in the tie. No leg asks the engine
    for more than `tie_fetch_limit` hits; capped below the tie, the cut is the engine's."""
    text = "Ferries leave Quillon Harbour for Ostrava at dawn."
    [vector] = embedder.embed_documents([text])
    names = [f"d{n:02}" for n in range(40)]
    index = open_backend(backend, tmp_path, embedder.dim)
    asked: list[int] = []
    run = index._run

    def counted_run(requests: list[Any]) -> list[list[Hit]]:
        asked.extend(request.limit for request in requests)
        return run(requests)

    index._run = counted_run  # type: ignore[method-assign]
    try:
        for name in reversed(names):
            payload = {"tenant_id": "acme", "doc_id": name, "ordinal": 0, "text": text}
            index.upsert([IndexedChunk(chunk_point_id("acme", name, text), vector, payload)])
        query = embedder.embed_query("ferries to Ostrava")
        for dense, words in ((query, None), (None, "ferries Ostrava"), (query, "ferries Ostrava")):
            asked.clear()
            hits = index.search(
                engine_query(ACME, 3, dense, words, candidates=4, tie_fetch_limit=tie_fetch_limit)
            )
            assert len(hits) == 3 and max(asked) <= max(tie_fetch_limit, 4 + 10)
            if tie_fetch_limit > len(names):
                assert [hit.payload["doc_id"] for hit in hits] == names[:3]
    finally:
        index.close()
