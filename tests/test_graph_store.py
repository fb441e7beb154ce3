"""The graph model's exactness under updates, and both stores: files (with a crash) and Redis."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import networkx as nx
import pytest
import redis

from core.settings import Settings
from core.types import TenantScope, chunk_point_id
from graph.extract import RuleExtractor
from graph.factory import open_graph_store
from graph.model import DocFacts, GraphDecodeError, TenantGraph
from graph.store import FileGraphStore, GraphStore, RedisGraphStore
from tests.support.services import redis_url

ACME = TenantScope("acme")
GLOBEX = TenantScope("globex")
REDIS_DB = 12  # this suite's keys live under a random prefix in this database
NAMES = [
    "Acme Corp",
    "ACME Corp",  # the same entity, another surface form
    "Marta Kowalski",
    "BRCA1",
    "IL-6",
    "TNF-alpha",
    "Quillon Harbour",
    "NASA",
    "Zephyr Initiative",
]
EXTRACT = RuleExtractor()


def facts(*chunks: str, doc: str = "") -> DocFacts:
    """A document's contribution; chunk ids derive from document and text, as point ids do."""
    return {chunk_point_id("acme", doc, text): EXTRACT.extract(text) for text in chunks}


def sentence(rng: random.Random) -> str:
    a, b, c = rng.sample(NAMES, 3)
    return f"Yesterday {a} met {b}. Later {b} wrote to {c} about {a}."


def assert_exact(graph: TenantGraph) -> None:
    rebuilt = TenantGraph.from_documents(graph.docs.items())
    assert nx.utils.graphs_equal(graph.g, rebuilt.g)
    assert graph.chunk_total == rebuilt.chunk_total


def test_any_sequence_of_updates_equals_a_rebuild() -> None:
    rng = random.Random(5)
    graph = TenantGraph()
    pool = [sentence(rng) for _ in range(30)]
    current: dict[str, list[str]] = {}
    for _ in range(300):
        doc = f"doc-{rng.randrange(6)}"
        if doc in current and rng.random() < 0.25:
            graph.set_document(doc, None)
            del current[doc]
        else:
            # An edit keeps some chunks and adds others, as a real edit does.
            kept = [c for c in current.get(doc, []) if rng.random() < 0.5]
            current[doc] = list(dict.fromkeys(kept + rng.sample(pool, rng.randint(1, 3))))
            graph.set_document(doc, facts(*current[doc], doc=doc))
        assert_exact(graph)
    assert graph.g.number_of_nodes() > 0
    for doc in list(current):
        graph.set_document(doc, None)
    assert graph.g.number_of_nodes() == graph.g.number_of_edges() == graph.chunk_total == 0


def test_a_node_shows_the_name_its_remaining_support_uses() -> None:
    graph = TenantGraph()
    graph.set_document("a", facts("Analysts at ACME Corp agreed.", "ACME Corp grew in Lyon."))
    graph.set_document("b", facts("Analysts at Acme Corp disagreed.", doc="b"))
    assert graph.describe("acme-corp")["name"] == "ACME Corp"
    graph.set_document("a", None)
    assert graph.describe("acme-corp") == {
        "key": "acme-corp",
        "name": "Acme Corp",
        "type": "name",
        "chunk_count": 1,
        "degree": 0,
    }


def test_mentions_match_known_keys_longest_first() -> None:
    graph = TenantGraph()
    graph.set_document(
        "a", facts("Marta Kowalski joined Acme Corp.", "They visited Acme for RNAs.")
    )
    assert graph.mentioned_in("did marta kowalski leave ACME corp? what about RNA") == [
        "marta-kowalski",
        "acme-corp",
        "rna",
    ]
    assert graph.mentioned_in("Alone: Acme, and RNAs") == ["acme", "rna"]
    assert graph.mentioned_in("Acme alone") == []  # a first word is capitalised anyway
    # A one-word key must be written as the corpus writes it: `acme` here is just a word.
    assert graph.mentioned_in("acme or rna, nothing known") == []


# --------------------------------------------------------------------------- file store


def test_file_store_round_trips_and_deletes(tmp_path: Path) -> None:
    store = FileGraphStore(tmp_path)
    store.put(ACME, "one.txt", facts("Marta Kowalski joined Acme Corp in Lyon."))
    store.put(ACME, "two.txt", facts("Acme Corp sells BRCA1 assays.", doc="two.txt"))
    store.put(GLOBEX, "one.txt", facts("NASA bought TNF-alpha kits."))
    store.put(ACME, "one.txt", None)

    reloaded = FileGraphStore(tmp_path)
    with reloaded.read(ACME) as graph, store.read(ACME) as original:
        assert nx.utils.graphs_equal(graph.g, original.g)
        assert set(graph.docs) == {"two.txt"}
        assert set(graph.g) == {"acme-corp", "brca1"}
    with reloaded.read(GLOBEX) as graph:
        assert set(graph.g) == {"nasa", "tnf-alpha"}
    assert len(list((tmp_path / "acme").iterdir())) == 1


CRASHING_WRITER = """
import os, sys
from pathlib import Path
from core.settings import Settings
from core.types import TenantScope, chunk_point_id
from graph.extract import RuleExtractor
from graph.factory import open_graph_store
from graph.store import FileGraphStore

store = FileGraphStore(Path(sys.argv[1]))
text = "Marta Kowalski left Acme Corp for NASA."
facts = {"c-new": RuleExtractor().extract(text)}
os.replace = lambda *args: os._exit(17)  # the process dies between fsync and rename
store.put(TenantScope("acme"), sys.argv[2], facts)
"""


def test_a_crash_mid_write_leaves_the_previous_version(tmp_path: Path) -> None:
    store = FileGraphStore(tmp_path)
    store.put(ACME, "one.txt", facts("Marta Kowalski joined Acme Corp in Lyon."))
    before = store.document(ACME, "one.txt")

    for doc_id in ("one.txt", "two.txt"):  # crash while replacing one, while adding another
        crashed = subprocess.run(
            [sys.executable, "-c", CRASHING_WRITER, str(tmp_path), doc_id],
            cwd=Path(__file__).parents[1],
            capture_output=True,
            check=False,
        )
        assert crashed.returncode == 17, crashed.stderr.decode()
    leftovers = list((tmp_path / "acme").glob(".*.tmp"))
    assert len(leftovers) == 2 and all(b"NASA" in p.read_bytes() for p in leftovers)

    reloaded = FileGraphStore(tmp_path)
    assert reloaded.document(ACME, "one.txt") == before
    assert reloaded.document(ACME, "two.txt") is None
    with reloaded.read(ACME) as graph:
        assert "nasa" not in graph.g and "lyon" in graph.g
    reloaded.put(ACME, "one.txt", facts("Marta Kowalski left Acme Corp for NASA."))
    with FileGraphStore(tmp_path).read(ACME) as graph:
        assert "nasa" in graph.g and "lyon" not in graph.g


def test_an_unreadable_document_file_is_named(tmp_path: Path) -> None:
    store = FileGraphStore(tmp_path)
    store.put(ACME, "one.txt", facts("Marta Kowalski joined Acme Corp."))
    [path] = (tmp_path / "acme").glob("*.json")
    path.write_bytes(b'{"doc_id": "one.txt"')
    with pytest.raises(GraphDecodeError, match=path.name), FileGraphStore(tmp_path).read(ACME):
        pass


# --------------------------------------------------------------------------- Redis store


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(redis_url(REDIS_DB))
    prefix = f"test-graph-{uuid4().hex}"
    yield prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def redis_store(prefix: str, log_keep: int = 10_000) -> RedisGraphStore:
    client = redis.Redis.from_url(redis_url(REDIS_DB))
    return RedisGraphStore(client, prefix=prefix, log_keep=log_keep)


def snapshot(store: GraphStore, scope: TenantScope) -> tuple[nx.MultiDiGraph, dict, int]:
    with store.read(scope) as graph:
        return graph.g.copy(), dict(graph.docs), graph.version


def test_redis_replicas_catch_up_through_the_change_log(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer, replica = redis_store(redis_prefix), redis_store(redis_prefix)
    writer.put(ACME, "one.txt", facts("Marta Kowalski joined Acme Corp in Lyon."))
    assert set(snapshot(replica, ACME)[0]) == {"marta-kowalski", "acme-corp", "lyon"}
    assert set(snapshot(replica, GLOBEX)[0]) == set()

    def no_full_reload(tenant_id: str) -> TenantGraph:
        raise AssertionError("a replica with an intact log must not reload everything")

    monkeypatch.setattr(replica, "_load", no_full_reload)
    writer.put(ACME, "two.txt", facts("Acme Corp sells BRCA1 assays."))
    writer.put(ACME, "one.txt", None)
    g, docs, version = snapshot(replica, ACME)
    assert set(g) == {"acme-corp", "brca1"} and set(docs) == {"two.txt"}
    assert version == 3
    assert nx.utils.graphs_equal(g, snapshot(writer, ACME)[0])


def test_a_replica_behind_a_trimmed_log_reloads_in_full(redis_prefix: str) -> None:
    writer, replica = redis_store(redis_prefix, log_keep=2), redis_store(redis_prefix)
    writer.put(ACME, "one.txt", facts("Marta Kowalski joined Acme Corp."))
    snapshot(replica, ACME)
    for i, name in enumerate(["NASA", "Lyon", "BRCA1", "Zurich"]):
        writer.put(ACME, f"doc{i}.txt", facts(f"Acme Corp met {name} people.", doc=str(i)))
    g, docs, version = snapshot(replica, ACME)
    assert version == 5 and len(docs) == 5
    assert nx.utils.graphs_equal(g, snapshot(writer, ACME)[0])


def test_the_last_writer_of_a_document_wins_everywhere(redis_prefix: str) -> None:
    first, second = redis_store(redis_prefix), redis_store(redis_prefix)
    first.put(ACME, "one.txt", facts("Marta Kowalski joined Acme Corp."))
    second.put(ACME, "one.txt", facts("Marta Kowalski joined NASA."))
    # `first` last saw its own write; every copy must converge on the later one.
    for store in (first, second, redis_store(redis_prefix)):
        g, docs, _ = snapshot(store, ACME)
        assert set(g) == {"marta-kowalski", "nasa"}
        assert store.document(ACME, "one.txt") == docs["one.txt"]


def test_settings_choose_the_store(tmp_path: Path) -> None:
    files = open_graph_store(Settings(data_dir=tmp_path))
    assert isinstance(files, FileGraphStore) and files.root == tmp_path / "graph"
    url = redis_url(REDIS_DB)
    shared = open_graph_store(Settings(data_dir=tmp_path, graph_store="redis", redis_url=url))
    assert isinstance(shared, RedisGraphStore)
    with shared.read(ACME) as graph:  # reaches the server
        assert graph.version >= 0
    shared.close()
