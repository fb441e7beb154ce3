"""One tenant's graph, derived exactly from what each of its documents contributed.

A document contributes one `Extraction` per chunk, keyed by the chunk's point id, which is unique
to its document (it is derived from the tenant, the document and the text). Every node and
edge records which chunks support it, so replacing or removing a document retracts exactly its
chunks' support and prunes what is left with none: the graph after any sequence of updates equals
the graph built from scratch from the documents that remain, names and weights included.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import networkx as nx

from graph.extract import MAX_KEY_TOKENS, Entity, Extraction, Relation, fold, surface_tokens

# chunk point id -> what that chunk says
DocFacts = dict[str, Extraction]


class GraphDecodeError(ValueError):
    """Stored graph data that cannot be read back; names the document when it can."""


class TenantGraph:
    """A MultiDiGraph (one edge per relation type) plus the per-document index that feeds it.

    Node attributes: `chunks` (supporting chunk ids), `names` and `types` (how many supporting
    chunks use each surface form and type; the most used one is shown). Edge attributes: `chunks`
    (chunk id -> weight there) and `weight` (their sum).
    """

    def __init__(self) -> None:
        self.g = nx.MultiDiGraph()
        self.docs: dict[str, DocFacts] = {}
        self.chunk_total = 0
        self.version = 0  # the store's version this graph reflects (Redis); 0 for files

    @classmethod
    def from_documents(cls, documents: Iterable[tuple[str, DocFacts]]) -> TenantGraph:
        """Replay stored contributions: how stores load, and what any update must equal."""
        graph = cls()
        for doc_id, facts in documents:
            graph.set_document(doc_id, facts)
        return graph

    def set_document(self, doc_id: str, facts: DocFacts | None) -> None:
        """Make the document contribute `facts` (None: nothing), touching only changed chunks."""
        old = self.docs.pop(doc_id, {})
        new = facts or {}
        for cid, extraction in old.items():
            if new.get(cid) != extraction:
                self._retract(cid, extraction)
        for cid, extraction in new.items():
            if old.get(cid) != extraction:
                self._support(cid, extraction)
        self.chunk_total += len(new) - len(old)
        if facts is not None:
            self.docs[doc_id] = dict(facts)

    def _support(self, cid: str, extraction: Extraction) -> None:
        g = self.g
        for e in extraction.entities:
            if e.key not in g:
                g.add_node(e.key, chunks=set(), names=Counter(), types=Counter())
            node = g.nodes[e.key]
            node["chunks"].add(cid)
            node["names"][e.name] += 1
            node["types"][e.type] += 1
        for r in extraction.relations:
            if not g.has_edge(r.source_key, r.target_key, r.type):
                g.add_edge(r.source_key, r.target_key, key=r.type, chunks={}, weight=0.0)
            edge = g.edges[r.source_key, r.target_key, r.type]
            edge["chunks"][cid] = r.weight
            edge["weight"] += r.weight

    def _retract(self, cid: str, extraction: Extraction) -> None:
        g = self.g
        for r in extraction.relations:
            edge = g.edges[r.source_key, r.target_key, r.type]
            edge["weight"] -= edge["chunks"].pop(cid)
            if not edge["chunks"]:
                g.remove_edge(r.source_key, r.target_key, r.type)
        for e in extraction.entities:
            node = g.nodes[e.key]
            node["chunks"].discard(cid)
            if not node["chunks"]:
                g.remove_node(e.key)  # its edges were retracted above: both ends share support
                continue
            _decrement(node["names"], e.name)
            _decrement(node["types"], e.type)

    # ------------------------------------------------------------------ reading

    def describe(self, key: str) -> dict[str, Any]:
        """A node as the API shows it."""
        node = self.g.nodes[key]
        return {
            "key": key,
            "name": _most_used(node["names"]),
            "type": _most_used(node["types"]),
            "chunk_count": len(node["chunks"]),
            "degree": len(self.neighbour_weights(key)),
        }

    def neighbour_weights(self, key: str) -> dict[str, float]:
        """Neighbours in either direction, with the weights of all edges between summed."""
        weights: Counter[str] = Counter()
        for adjacency in (self.g.succ[key], self.g.pred[key]):
            for other, edges in adjacency.items():
                weights[other] += sum(attrs["weight"] for attrs in edges.values())
        return weights

    def mentioned_in(self, text: str) -> list[str]:
        """Known entity keys in a text, longest match first, left to right, without overlaps.

        Token n-grams are matched against node keys with the extractor's own normalisation, so
        this finds what extraction would find without running an extractor (which may be
        remote). Case is ignored where a key is specific on its own (several words, or digits:
        `zephyr initiative`, `brca1`); a one-word key must be written as the corpus writes it
        (`UK`, `Dicer`), or every `in` and `cells` of a question would match some entity, and
        not merely capitalised as the question's first word (`Articles published...`).
        """
        surfaces = surface_tokens(text)
        tokens = [fold(t) for t in surfaces]
        found: dict[str, None] = {}
        i = 0
        while i < len(tokens):
            for n in range(min(MAX_KEY_TOKENS, len(tokens) - i), 0, -1):
                word = surfaces[i] if n == 1 else ""
                if i == 0 and word.istitle():
                    continue  # capitalised by grammar, as extraction treats sentence starts
                key = self._known_key("-".join(tokens[i : i + n]), word)
                if key is not None:
                    found[key] = None
                    i += n
                    break
            else:
                i += 1
        return list(found)

    def _known_key(self, key: str, word: str) -> str | None:
        """`key` if it names a node as written; `word` is the surface of a one-token key."""
        if not word or any(c.isdigit() for c in key):
            return key if key in self.g else None
        forms = {word, word + "s", word.removesuffix("s")}  # RNAs is the acronym RNA
        for k in (key, key.removesuffix("s")):
            if k in self.g and not forms.isdisjoint(self.g.nodes[k]["names"]):
                return k
        return None

    def idf(self, key: str) -> float:
        """How specific an entity is: rare entities say more about a query than hubs do."""
        return math.log(1 + self.chunk_total / len(self.g.nodes[key]["chunks"]))


def _decrement(counter: Counter[str], item: str) -> None:
    counter[item] -= 1
    if counter[item] <= 0:
        del counter[item]


def _most_used(counter: Counter[str]) -> str:
    return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]


# --------------------------------------------------------------------------- storage format


def encode_document(doc_id: str, facts: DocFacts) -> bytes:
    """A document's contribution as compact JSON: the unit every store persists."""
    chunks = {
        cid: {
            "e": [[e.name, e.key, e.type] for e in x.entities],
            "r": [[r.source_key, r.target_key, r.type, r.weight] for r in x.relations],
        }
        for cid, x in facts.items()
    }
    return json.dumps({"doc_id": doc_id, "chunks": chunks}, separators=(",", ":")).encode()


def decode_document(data: bytes) -> tuple[str, DocFacts]:
    try:
        obj = json.loads(data)
        facts = {
            cid: Extraction(
                [Entity(*e) for e in x["e"]], [Relation(s, t, k, float(w)) for s, t, k, w in x["r"]]
            )
            for cid, x in obj["chunks"].items()
        }
        return str(obj["doc_id"]), facts
    except (ValueError, KeyError, TypeError) as exc:
        raise GraphDecodeError(f"unreadable graph document: {exc}") from exc
