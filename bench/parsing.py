"""What isolating the parsers costs: SciFact abstracts and generated PDFs parsed in-process against
the parser pool of `ingest.isolation` (separate processes, pickled over pipes), on the same
documents in the same run.

Pool start-up (importing the parser libraries) is outside every timing. Threads stand for the
worker's task threads: one or two documents parse at once.
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

from core.settings import Settings
from ingest.isolation import ParseBudget, ParserPool
from ingest.parsers import parse_document
from tests.support.documents import make_pdf

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


if __name__ == "__main__":
    main()
