"""Our BM25 mode beside bm25s (Snowball stemming, stopwords), per dataset, and why they differ.

    python bench/bm25_parity.py [--data ../shared/data] [--samples 6]

For every BEIR-layout folder under `--data` (corpus.jsonl, queries.jsonl, qrels/test.tsv), on the
test queries, NDCG@10 and Recall@10 (`eval/metrics.py`) of:

  ours, BM25 mode          the engine's text index (the shipped analyzer and k1, b) over the
                           chunks ingestion cuts (`ingest.chunking.Chunker`, the shipped model's
                           tokenizer): what `rag eval --modes bm25` measures, without embedding
  bm25s, whole documents   the peer: title and text as one document, bm25s's tokenizer with
                           PyStemmer's English Snowball stemmer and its English stopwords, at
                           our k1 and b (and at its own default k1=1.5)
  engine, whole documents  ours on the peer's units: the difference to the peer is the analyzer
  bm25s, our chunks        the peer on our units: the difference to ours is the analyzer

then how the two analyzers tokenize the same texts (the share of queries and documents whose
token streams differ, the tokens only one of them keeps, and a sample of streams side by side),
and the scores the engine gives query/document pairs beside textbook BM25 recomputed here from
the engine's own tokens, and bm25s's scores for the same pairs.

The engine's tokens come from the engine: `core.index.edge.analyzer` names each token by its
murmur3 hash; each word is analysed alone and spelt here (lowercased, accent-folded, stemmed by
PyStemmer) where that spelling hashes to the engine's token, else shown as `<word>`.
No model is loaded but the tokenizer, nothing is embedded: each run indexes text in scratch shards.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from core.embedding import Embedder  # noqa: E402
from core.index.edge import EdgeIndex, analyzer  # noqa: E402
from core.index.query import EngineQuery  # noqa: E402
from core.index.schema import TextIndexConfig  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import IndexedChunk, TenantScope  # noqa: E402
from eval.beir import BeirDataset, load_beir  # noqa: E402
from eval.metrics import mean, ndcg_at, recall_at  # noqa: E402
from ingest.chunking import Chunker  # noqa: E402

DEPTH = 50  # chunks (or documents) a query asks for, as `rag eval` does (its Recall@50)
BM25S_DEFAULT_K1 = 1.5
_WORD = re.compile(r"[^\W_]+")  # the engine's word tokenizer: runs of letters and digits
_SCOPE = TenantScope("bench")
_DIM = 4  # the text leg ignores vectors; each point carries a constant one

Units = tuple[list[str], list[str]]  # texts, and the BEIR document each belongs to
Run = dict[str, list[str]]  # query id -> BEIR document ids, best first


def murmur3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 (x86, 32-bit): the engine's token id is its value as i32, made positive."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed
    tail = len(data) - len(data) % 4
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    k = int.from_bytes(data[tail:], "little")
    if k:
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        h ^= (k * c2) & mask
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return abs(h - (1 << 32) if h >= 1 << 31 else h)


class EngineTokens:
    """The tokens the engine's text index makes of a text: its hashes, spelt where a spelling
    is verified (lowercased, accent-folded, PyStemmer-stemmed, hashing to the engine's id)."""

    def __init__(self, cfg: TextIndexConfig) -> None:
        import Stemmer

        self._engine = analyzer(cfg)
        self._cfg = cfg
        self._stem = Stemmer.Stemmer(cfg.stemmer).stemWord if cfg.stemmer else (lambda w: w)
        self._words: dict[str, tuple[int, ...]] = {}
        self._spelling: dict[int, str] = {}
        self._unspelt: dict[int, str] = {}  # a word behind each id no spelling matched
        self.split_mismatches = 0  # texts whose words, analysed one by one, miss a token

    def ids(self, text: str) -> list[int]:
        ids = [i for word in _WORD.findall(text) for i in self._analyse(word)]
        if set(ids) != set(self._engine.embed_document(text).indices):
            self.split_mismatches += 1
        return ids

    def spell(self, ids: Sequence[int]) -> list[str]:
        """Each id as its verified spelling, or `<word>` for a word the engine stems otherwise
        than PyStemmer (the engine's Snowball English is a newer release)."""
        return [self._spelling.get(i) or f"<{self._unspelt[i]}>" for i in ids]

    def __call__(self, text: str) -> list[str]:
        return self.spell(self.ids(text))

    @property
    def unspelt(self) -> dict[int, str]:
        return {i: w for i, w in self._unspelt.items() if i not in self._spelling}

    def _analyse(self, word: str) -> tuple[int, ...]:
        if word in self._words:
            return self._words[word]
        ids = self._words[word] = tuple(self._engine.embed_query(word).indices)
        spelt = word
        if self._cfg.ascii_folding:
            decomposed = unicodedata.normalize("NFKD", spelt)
            spelt = "".join(c for c in decomposed if not unicodedata.combining(c))
        spelt = self._stem(spelt.lower() if self._cfg.lowercase else spelt)
        for i in ids:
            if murmur3_32(spelt.encode()) == i:
                self._spelling[i] = spelt
            else:
                self._unspelt.setdefault(i, word.lower())
        return ids


class Bm25sTokens:
    """bm25s's tokenizer (`\\w\\w+`, lowercased, its English stopwords, PyStemmer English)."""

    def __init__(self) -> None:
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")

    def many(self, texts: Sequence[str]) -> list[list[str]]:
        return self._bm25s.tokenize(
            list(texts),
            stopwords="en",
            stemmer=self.stemmer,
            return_ids=False,
            show_progress=False,
        )

    def __call__(self, text: str) -> list[str]:
        return self.many([text])[0]


def to_documents(ranked: Sequence[str]) -> list[str]:
    """Each document at the rank of its best unit, as `rag eval` counts chunks."""
    return list(dict.fromkeys(ranked))


class EngineRun:
    """Units in a scratch shard of the engine's text index; BM25 queries as the BM25 mode runs
    them (text only, the tenant as idf corpus, ties ordered by `core.index.ranking`)."""

    def __init__(self, units: Units, cfg: TextIndexConfig, bm25: tuple[float, float]) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="bm25-parity-"))
        self.index = EdgeIndex(self._dir / "shard", _DIM, cfg, bm25, optimize_min_unindexed=10**9)
        texts, owners = units
        vector = np.ones(_DIM, dtype=np.float32)
        points = [
            IndexedChunk(
                str(uuid.uuid5(uuid.NAMESPACE_OID, f"{owner}/{n}")),
                vector,
                {"tenant_id": _SCOPE.tenant_id, "doc_id": owner, "ordinal": n, "text": text},
            )
            for n, (text, owner) in enumerate(zip(texts, owners, strict=True))
        ]
        for start in range(0, len(points), 1000):
            self.index.upsert(points[start : start + 1000])

    def scored(self, query: str, limit: int = DEPTH) -> list[tuple[str, float]]:
        settings = Settings().retrieval
        hits = self.index.search(
            EngineQuery(
                _SCOPE,
                limit,
                text=query,
                candidates=settings.candidates_per_leg,
                rrf_k=settings.rrf_k,
                tie_fetch_limit=settings.tie_fetch_limit,
            )
        )
        return [(h.payload["doc_id"], h.score) for h in hits]

    def run(self, queries: Mapping[str, str]) -> Run:
        return {q: to_documents([d for d, _ in self.scored(t)]) for q, t in queries.items()}

    def close(self) -> None:
        self.index.close()
        shutil.rmtree(self._dir)


class Bm25sRun:
    """bm25s (method "lucene") over the same units."""

    def __init__(self, units: Units, tokens: Bm25sTokens, k1: float, b: float) -> None:
        import bm25s

        self._owners = units[1]
        self._tokens = tokens
        self.model = bm25s.BM25(k1=k1, b=b)
        self.model.index(tokens.many(units[0]), show_progress=False)

    def score(self, query: str, unit: int) -> float:
        ids = self.model.get_tokens_ids(self._tokens(query))
        return float(self.model.get_scores(ids)[unit]) if ids else 0.0

    def run(self, queries: Mapping[str, str]) -> Run:
        texts = list(queries.values())
        found, scores = self.model.retrieve(
            self._tokens.many(texts), k=min(DEPTH, len(self._owners)), show_progress=False
        )
        return {
            q: to_documents(
                [self._owners[i] for i, s in zip(found[n], scores[n], strict=True) if s > 0]
            )
            for n, q in enumerate(queries)
        }


@dataclass(frozen=True)
class Scored:
    name: str
    ndcg: dict[str, float]
    recall: dict[str, float]

    @classmethod
    def of(cls, name: str, run: Run, dataset: BeirDataset) -> Scored:
        qrels = {q: dataset.qrels[q] for q in run}
        return cls(name, ndcg_at(run, qrels, 10), recall_at(run, qrels, 10))


def whole_documents(dataset: BeirDataset) -> Units:
    ids = list(dataset.corpus)
    return [dataset.corpus[d].content for d in ids], ids


def chunks(dataset: BeirDataset, chunker: Chunker) -> Units:
    """Each document cut as ingestion cuts the file the evaluation writes for it."""
    texts, owners = [], []
    for doc_id, doc in dataset.corpus.items():
        for chunk in chunker.split(doc.content):
            texts.append(chunk.text)
            owners.append(doc_id)
    return texts, owners


def lucene_bm25(
    corpus: Mapping[str, list[str]], k1: float, b: float
) -> Callable[[list[str], str], float]:
    """Textbook BM25 (Lucene's idf, the (k1 + 1) factor), each query term once."""
    df: Counter[str] = Counter(t for tokens in corpus.values() for t in set(tokens))
    n, avgdl = len(corpus), sum(map(len, corpus.values())) / len(corpus)
    counts = {d: Counter(tokens) for d, tokens in corpus.items()}

    def score(query: list[str], doc: str) -> float:
        norm = k1 * (1 - b + b * len(corpus[doc]) / avgdl)
        total = 0.0
        for term in set(query):
            tf = counts[doc][term]
            if tf:
                idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
                total += idf * tf * (k1 + 1) / (tf + norm)
        return total

    return score


def print_scores(rows: list[Scored], peer: Scored) -> None:
    print(f"{'system':<46} {'NDCG@10':>8} {'Recall@10':>10} {'vs peer':>8}")
    for row in rows:
        ndcg, recall = mean(row.ndcg), mean(row.recall)
        gap = "" if row is peer else f"{ndcg - mean(peer.ndcg):+.4f}"
        print(f"{row.name:<46} {ndcg:>8.4f} {recall:>10.4f} {gap:>8}")


def print_per_query(ours: Scored, peer: Scored) -> None:
    diff = {q: ours.ndcg[q] - peer.ndcg[q] for q in ours.ndcg}
    better = sum(d > 1e-9 for d in diff.values())
    worse = sum(d < -1e-9 for d in diff.values())
    print(
        f"per query NDCG@10, {ours.name} against {peer.name}: {better} better, {worse} worse, "
        f"{len(diff) - better - worse} equal"
    )
    worst = sorted(diff, key=diff.__getitem__)[:5]
    print("  most behind: " + ", ".join(f"q{q} {diff[q]:+.3f}" for q in worst))


def print_tokens(
    dataset: BeirDataset, ours: EngineTokens, peer: Bm25sTokens, samples: int
) -> dict[str, list[str]]:
    """Token streams of both analyzers; returns the engine's token ids of every document."""
    queries = dataset.judged_queries
    texts = {f"query {q}": t for q, t in queries.items()}
    docs = {f"doc {d}": dataset.corpus[d].content for d in dataset.corpus}
    ids = {name: ours.ids(t) for name, t in (texts | docs).items()}
    streams_ours = {name: ours.spell(i) for name, i in ids.items()}
    peer_many = peer.many(list((texts | docs).values()))
    streams_peer = dict(zip(texts | docs, peer_many, strict=True))
    only_ours: Counter[str] = Counter()
    only_peer: Counter[str] = Counter()
    differ = {"query": 0, "doc": 0}
    for name in streams_ours:
        a, p = Counter(streams_ours[name]), Counter(streams_peer[name])
        if a != p:
            differ[name.split()[0]] += 1
            only_ours.update((a - p).elements())
            only_peer.update((p - a).elements())
    print(
        f"token streams that differ: {differ['query']} of {len(texts)} queries, "
        f"{differ['doc']} of {len(docs)} documents; texts whose words, analysed alone, "
        f"missed a token of the whole: {ours.split_mismatches}"
    )
    unspelt = sorted(ours.unspelt.values())
    print(f"  engine stems PyStemmer does not make ({len(unspelt)}): " + ", ".join(unspelt[:30]))
    print("  kept by ours only: " + ", ".join(f"{t} {n}" for t, n in only_ours.most_common(20)))
    print("  kept by bm25s only: " + ", ".join(f"{t} {n}" for t, n in only_peer.most_common(20)))
    shown = [n for n in texts if Counter(streams_ours[n]) != Counter(streams_peer[n])][:samples]
    for name in shown:
        print(f"  {name}: {texts[name]}")
        print(f"    ours : {' '.join(streams_ours[name])}")
        print(f"    bm25s: {' '.join(streams_peer[name])}")
    return {name.removeprefix("doc "): [str(i) for i in ids[name]] for name in docs}


def print_pair_scores(
    dataset: BeirDataset,
    engine: EngineRun,
    peer: Bm25sRun,
    engine_tokens: EngineTokens,
    doc_tokens: dict[str, list[str]],
    bm25: tuple[float, float],
    samples: int,
) -> None:
    """The engine's score of query/document pairs beside BM25 recomputed from its tokens, and
    bm25s's score times (k1 + 1) (bm25s's "lucene" method leaves that constant factor out)."""
    k1, b = bm25
    textbook = lucene_bm25(doc_tokens, k1, b)
    doc_index = {d: n for n, d in enumerate(dataset.corpus)}
    queries = dataset.judged_queries
    query_tokens = {q: [str(i) for i in engine_tokens.ids(t)] for q, t in queries.items()}
    worst, pairs = 0.0, []
    for qid, text in queries.items():
        for doc, score in engine.scored(text, 10):
            worst = max(worst, abs(score - textbook(query_tokens[qid], doc)))
            pairs.append((qid, doc, score))
    print(
        f"engine score against textbook BM25 over the engine's tokens, {len(pairs)} pairs "
        f"(each query's top 10): largest difference {worst:.2e}"
    )
    print(f"  {'query':>8} {'document':>10} {'engine':>9} {'textbook':>9} {'bm25s x(k1+1)':>14}")
    for qid, doc, score in pairs[:: max(1, len(pairs) // samples)][:samples]:
        mine = textbook(query_tokens[qid], doc)
        theirs = peer.score(queries[qid], doc_index[doc]) * (k1 + 1)
        print(f"  {qid:>8} {doc:>10} {score:>9.4f} {mine:>9.4f} {theirs:>14.4f}")


def beir_folders(root: Path) -> list[Path]:
    found = {p.parent for p in root.rglob("corpus.jsonl")}
    return sorted(
        p for p in found if (p / "queries.jsonl").exists() and (p / "qrels/test.tsv").exists()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=ROOT.parent / "shared/data",
        help="a dataset or a folder of them",
    )
    parser.add_argument("--samples", type=int, default=6, help="texts and pairs shown")
    args = parser.parse_args()

    settings = Settings()
    cfg = TextIndexConfig.from_settings(settings.index)
    bm25 = (settings.index.bm25_k1, settings.index.bm25_b)
    models = settings.models
    embedder = Embedder(models.embedding_model, models.embedding_batch_size)
    chunker = Chunker.for_embedder(
        embedder, settings.ingest.chunk_size, settings.ingest.chunk_overlap
    )
    print(
        f"ours: the engine's text index ({cfg}), k1 {bm25[0]}, b {bm25[1]}; "
        f"bm25s: \\w\\w+ tokens, its English stopwords, PyStemmer English, method lucene"
    )
    peer_tokens = Bm25sTokens()
    for folder in beir_folders(args.data):
        started = time.perf_counter()
        dataset = load_beir(folder)
        queries = dataset.judged_queries
        whole, cut = whole_documents(dataset), chunks(dataset, chunker)
        print(
            f"\n## {folder.relative_to(args.data.parent)}: {len(dataset.corpus):,} documents "
            f"({len(cut[0]):,} chunks), {len(queries)} test queries"
        )
        served = EngineRun(cut, cfg, bm25)
        engine_whole = EngineRun(whole, cfg, bm25)
        peer_whole = Bm25sRun(whole, peer_tokens, *bm25)
        ours = Scored.of("ours, BM25 mode (engine, chunks)", served.run(queries), dataset)
        peer = Scored.of("bm25s, whole documents (peer)", peer_whole.run(queries), dataset)
        rows = [
            ours,
            peer,
            Scored.of("engine, whole documents", engine_whole.run(queries), dataset),
            Scored.of("bm25s, our chunks", Bm25sRun(cut, peer_tokens, *bm25).run(queries), dataset),
            Scored.of(
                f"bm25s, whole documents, k1 {BM25S_DEFAULT_K1}",
                Bm25sRun(whole, peer_tokens, BM25S_DEFAULT_K1, bm25[1]).run(queries),
                dataset,
            ),
        ]
        print_scores(rows, peer)
        print_per_query(ours, peer)
        print_per_query(rows[2], peer)
        engine_tokens = EngineTokens(cfg)
        doc_tokens = print_tokens(dataset, engine_tokens, peer_tokens, args.samples)
        print_pair_scores(
            dataset, engine_whole, peer_whole, engine_tokens, doc_tokens, bm25, args.samples
        )
        served.close()
        engine_whole.close()
        print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
