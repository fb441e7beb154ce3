"""The graph leg's ranking and the graph API, on graphs stored through the real file store."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.auth import current_scope
from api.errors import install_error_handlers
from api.routes import graph
from core.types import TenantScope
from graph.extract import RuleExtractor
from graph.leg import rank_chunks
from graph.model import TenantGraph
from graph.store import FileGraphStore
from tests.support.engine import graph_leg

ACME = TenantScope("acme")
GLOBEX = TenantScope("globex")
EXTRACT = RuleExtractor()
# chunk id -> text; a chain Marta Kowalski - Zephyr Initiative - Quillon Harbour - Ostrava
CHAIN = {
    "c-marta": "Marta Kowalski leads the Zephyr Initiative.",
    "c-zephyr": "The Zephyr Initiative operates from Quillon Harbour.",
    "c-harbour": "Ferries leave Quillon Harbour for Ostrava at dawn.",
    "c-ostrava": "The city of Ostrava has a university.",
    "c-gdansk": "Marta Kowalski once lived in Gdansk.",
    "c-again": "Marta Kowalski praised the Zephyr Initiative again.",
}


@pytest.fixture
def store(tmp_path: Path) -> FileGraphStore:
    store = FileGraphStore(tmp_path)
    for cid, text in CHAIN.items():
        store.put(ACME, f"{cid}.txt", {cid: EXTRACT.extract(text)})
    store.put(GLOBEX, "g.txt", {"g-1": EXTRACT.extract("Ivo Brandt runs the Zephyr Initiative.")})
    return store


def test_chunks_rank_by_hop_then_weight(store: FileGraphStore) -> None:
    leg = graph_leg(store, max_hops=2)
    ranked = leg.rank(ACME, "What does marta kowalski do?")
    # hop 0: the three chunks naming her; hop 1: Zephyr (2 shared sentences) over Gdansk (1);
    # hop 2: Quillon Harbour. Ostrava is 3 hops away.
    assert ranked[:3] == sorted(["c-again", "c-gdansk", "c-marta"])
    assert ranked[3:] == ["c-zephyr", "c-harbour"]
    assert graph_leg(store, max_hops=1).rank(ACME, "marta kowalski") == ranked[:4]
    assert graph_leg(store, max_hops=0).rank(ACME, "marta kowalski") == ranked[:3]


def test_specific_entities_outweigh_common_ones(store: FileGraphStore) -> None:
    # Zephyr Initiative is named by three acme chunks, Gdansk by one: the Gdansk chunk is the
    # most specific answer to a question naming both.
    ranked = graph_leg(store).rank(ACME, "Zephyr Initiative and Gdansk")
    assert ranked[0] == "c-gdansk"
    assert set(ranked[1:4]) == {"c-marta", "c-zephyr", "c-again"}


def test_the_leg_is_capped_never_cuts_a_tie_and_is_silent_without_entities(
    store: FileGraphStore,
) -> None:
    assert graph_leg(store).rank(ACME, "what is the weather like") == []
    with store.read(ACME) as graph:
        assert graph.mentioned_in("what is the weather like") == []
    full = graph_leg(store).rank(ACME, "marta kowalski")
    assert graph_leg(store, max_chunks=4).rank(ACME, "marta kowalski", limit=50) == full[:4]
    assert graph_leg(store).rank(ACME, "marta kowalski", limit=3) == full[:3]
    # Her three chunks tie: an arbitrary two of them would be a ranking the graph does not know.
    assert graph_leg(store).rank(ACME, "marta kowalski", limit=2) == []


def test_tenants_only_see_their_own_graph(store: FileGraphStore) -> None:
    assert graph_leg(store).rank(GLOBEX, "marta kowalski") == []
    assert graph_leg(store).rank(GLOBEX, "Zephyr Initiative") == ["g-1"]
    assert "g-1" not in graph_leg(store).rank(ACME, "Zephyr Initiative")


# --------------------------------------------------------------------------- API


def client_for(store: FileGraphStore, scope: TenantScope) -> TestClient:
    """The graph routes alone, on `store`, as a caller of `scope` (keys are tested elsewhere)."""
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=1)
    app.include_router(graph.router)
    app.dependency_overrides[graph.graph_store] = lambda: store
    app.dependency_overrides[current_scope] = lambda: scope
    return TestClient(app)


def test_entities_search_ranks_exact_then_prefix_then_mentions(store: FileGraphStore) -> None:
    client = client_for(store, ACME)
    body = client.get("/v1/graph/entities", params={"q": "Zephyr"}).json()
    assert body == {
        "entities": [
            {
                "key": "zephyr-initiative",
                "name": "Zephyr Initiative",
                "type": "name",
                "chunk_count": 3,
                "degree": 2,
            }
        ]
    }
    keys = [e["key"] for e in client.get("/v1/graph/entities").json()["entities"]]
    assert keys[:2] == ["marta-kowalski", "zephyr-initiative"]  # three chunks each
    assert len(keys) == 5
    assert client.get("/v1/graph/entities", params={"limit": 1}).json()["entities"][0]["key"] == (
        "marta-kowalski"
    )


def test_neighbors_walk_hops_in_either_direction(store: FileGraphStore) -> None:
    client = client_for(store, ACME)
    one = client.get("/v1/graph/entities/quillon-harbour/neighbors").json()
    assert one["entity"]["key"] == "quillon-harbour"
    assert [(n["key"], n["hops"]) for n in one["neighbors"]] == [
        ("ostrava", 1),
        ("zephyr-initiative", 1),
    ]
    assert {(e["source"], e["target"]) for e in one["edges"]} == {
        ("ostrava", "quillon-harbour"),
        ("quillon-harbour", "zephyr-initiative"),
    }
    three = client.get("/v1/graph/entities/quillon-harbour/neighbors", params={"hops": 3}).json()
    assert {(n["key"], n["hops"]) for n in three["neighbors"]} == {
        ("ostrava", 1),
        ("zephyr-initiative", 1),
        ("marta-kowalski", 2),
        ("gdansk", 3),
    }


def test_graph_api_errors_are_machine_readable(store: FileGraphStore) -> None:
    client = client_for(store, ACME)
    missing = client.get("/v1/graph/entities/ivo-brandt/neighbors")  # globex's, not acme's
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "entity_not_found"
    too_far = client.get("/v1/graph/entities/ostrava/neighbors", params={"hops": 4})
    assert too_far.status_code == 422
    assert too_far.json()["error"]["field"] == "query.hops"
    blank = client.get("/v1/graph/entities", params={"q": "?!"})
    assert blank.status_code == 422
    assert blank.json()["error"]["code"] == "empty_query"


def test_graph_api_is_tenant_scoped(store: FileGraphStore) -> None:
    client = client_for(store, GLOBEX)
    keys = {e["key"] for e in client.get("/v1/graph/entities").json()["entities"]}
    assert keys == {"ivo-brandt", "zephyr-initiative"}
    neighbours = client.get("/v1/graph/entities/zephyr-initiative/neighbors").json()["neighbors"]
    assert [n["key"] for n in neighbours] == ["ivo-brandt"]


def test_a_graph_built_in_another_order_ranks_alike() -> None:
    """Thirty documents linking ten companies three at a time, added in two orders: activations
    spread over two hops are sums of many fractions, which come out equal to the last bit, and
    so rank (and tie) alike, only if both graphs add them up in one order."""
    companies = [f"{name} Holdings" for name in ("Alder", "Birch", "Cedar", "Elm", "Fir")]
    companies += [f"{name} Labs" for name in ("Hazel", "Larch", "Maple", "Oak", "Rowan")]
    picks = random.Random(1)
    documents = []
    for d in range(30):
        facts = {}
        for c in range(2):
            a, b, e = picks.sample(companies, 3)
            facts[f"c{d}-{c}"] = EXTRACT.extract(f"{a} works with {b} and {e} in Ostrava.")
        documents.append((f"doc{d}.txt", facts))
    built = TenantGraph.from_documents(documents)
    rebuilt = TenantGraph.from_documents(reversed(documents))
    for company in companies:
        seeds = {key: built.idf(key) for key in built.mentioned_in(company)}
        assert seeds
        assert rank_chunks(built, seeds, 2, 60) == rank_chunks(rebuilt, seeds, 2, 60), company
