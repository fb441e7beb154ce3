"""What isolating the parsers costs: SciFact abstracts and generated PDFs parsed in-process against
the parser pool of `ingest.isolation` (separate processes, pickled over pipes), on the same
documents in the same run. Then reading them as ingestion does, parsed and chunked: parsed in the
pool and chunked in this process by the chunker before issue 23 (as ingestion did), against parsed
and chunked in the pool, under its budget (as it does now).

Pool start-up (importing the parser libraries, sending the chunker) is outside every timing.
Threads stand for the worker's task threads: one or two documents parse at once.
Usage: python bench/parsing.py --docs 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# Run as a script: bench/ is first on sys.path and its ingest.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoTokenizer

from core.settings import Settings
from ingest.chunking import Chunker
from ingest.isolation import ParseBudget, ParserPool
from ingest.parsers import parse_document
from tests.support.documents import make_pdf
from tests.support.reference_chunker import ReferenceChunker

CORPUS = Path("/work/shared/data/scifact/corpus.jsonl")


def documents(n: int) -> list[tuple[str, bytes]]:
    docs = []
    with CORPUS.open() as f:
        for line, _ in zip(f, range(n), strict=False):
            row = json.loads(line)
            text = f"# {row['title']}\n\n{row['text']}"
            docs.append((f"{row['_id']}.md", text.encode()))
    pages = [
        row.decode()[:1500].encode("latin-1", "replace").decode("latin-1") for _, row in docs[:3]
    ]
    docs += [(f"report{i}.pdf", make_pdf(pages)) for i in range(max(1, n // 20))]
    return docs


def timed(parse, docs: list[tuple[str, bytes]], threads: int) -> float:
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as executor:
        list(executor.map(lambda d: parse(*d), docs))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()
    docs = documents(args.docs)
    s = Settings()
    budget = ParseBudget(
        s.ingest.parse_timeout_seconds,
        s.ingest.parse_max_expanded_bytes,
        s.ingest.parse_memory_mb,
        s.ingest.parse_niceness,
    )
    print(f"{len(docs)} documents ({sum(len(d) for _, d in docs) / 1e6:.1f} MB)")
    for threads in (1, 2):
        inline = timed(parse_document, docs, threads)
        pool = ParserPool(threads, budget)
        for _ in range(threads):  # start every process before timing
            pool.parse(*docs[0])
        isolated = timed(pool.parse, docs, threads)
        pool.close()
        print(
            f"{threads} thread(s): in-process {len(docs) / inline:7.0f} docs/s, "
            f"parser pool of {threads} {len(docs) / isolated:7.0f} docs/s "
            f"(ratio {inline / isolated:.2f})"
        )
    tokenizer = AutoTokenizer.from_pretrained(s.models.embedding_model).backend_tokenizer
    size = s.ingest.chunk_size or 254  # the shipped MiniLM's window
    before = ReferenceChunker(tokenizer, size, s.ingest.chunk_overlap)
    after = Chunker(tokenizer, size, s.ingest.chunk_overlap)
    before.split("Warm. " * size)  # NLTK, loaded on first use
    for threads in (1, 2):
        here, there = read_times(docs, budget, before, after, threads)
        print(
            f"{threads} thread(s), parsed and chunked: chunked in this process "
            f"{len(docs) / here:7.0f} docs/s, in the pool {len(docs) / there:7.0f} docs/s "
            f"(ratio {here / there:.2f})"
        )


def read_times(
    docs: list[tuple[str, bytes]],
    budget: ParseBudget,
    before: ReferenceChunker,
    after: Chunker,
    threads: int,
) -> tuple[float, float]:
    """Seconds to parse and chunk `docs`: chunked in this process (as before issue 23), then in
    the parser pool."""
    pool = ParserPool(threads, budget)
    try:
        with ThreadPoolExecutor(threads) as executor:  # start and equip every process
            list(executor.map(lambda _: pool.read(*docs[0], after), range(threads)))
        here = timed(lambda key, data: before.chunks_of(pool.parse(key, data)), docs, threads)
        there = timed(lambda key, data: pool.read(key, data, after), docs, threads)
    finally:
        pool.close()
    return here, there


if __name__ == "__main__":
    main()
