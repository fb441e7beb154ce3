"""What chunking a document costs, by format and size: the bounded chunker against the one before
issue 23 (tests/support/reference_chunker.py, which tokenized a whole text at once), on the same
documents in the same run.

For each format (csv, txt, pdf, json) and size, each chunker chunks the parsed document in a fresh
process: MB of input per CPU second (chunking is single-threaded: on an idle machine, per second;
CPU time keeps the figure steady on a shared one), and the rise of that process's peak resident
set per MB of input (the tokenizer allocates in Rust, out of tracemalloc's sight). Parsing, loading
the tokenizer and NLTK (the sentence splitter loads it on first use) are outside the figures. No
model weights are loaded.
Usage: python bench/chunking.py [--sizes 0.25 1 4] [--formats csv txt pdf json] [--chunk-size 254]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# Run as a script: bench/ is first on sys.path and its ingest.py would shadow the package.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.sized import FORMATS  # noqa: E402

CHUNKERS = ("before", "after")


def measure(chunker_name: str, fmt: str, size: int, chunk_size: int) -> dict[str, float]:
    """In this process: chunk one document with one chunker, as ingestion would."""
    from transformers import AutoTokenizer

    from core.settings import Settings
    from ingest.chunking import Chunker
    from ingest.parsers import parse_document
    from tests.support.memory import peak_growth
    from tests.support.reference_chunker import ReferenceChunker
    from tests.support.sized import sized_document

    s = Settings()
    tokenizer = AutoTokenizer.from_pretrained(s.models.embedding_model).backend_tokenizer
    kind = Chunker if chunker_name == "after" else ReferenceChunker
    chunker = kind(tokenizer, chunk_size, s.ingest.chunk_overlap)
    chunker.split("Warm. " * chunk_size)  # NLTK, loaded on first use
    data = sized_document(fmt, size)
    parsed = parse_document(f"bench.{fmt}", data)

    def chunk() -> tuple[int, float]:
        started = time.process_time()
        if isinstance(chunker, Chunker):
            chunks = len(chunker.chunk_document(parsed).chunks)
        else:
            chunks = len(chunker.chunks_of(parsed))
        return chunks, time.process_time() - started

    (chunks, seconds), growth = peak_growth(chunk)
    return {"bytes": len(data), "seconds": seconds, "growth": growth, "chunks": chunks}


def in_child(chunker_name: str, fmt: str, size: int, chunk_size: int) -> dict[str, float]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from bench.chunking import measure; "
        "print(json.dumps(measure(sys.argv[2], sys.argv[3], *map(int, sys.argv[4:]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), chunker_name, fmt, str(size), str(chunk_size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.25, 1, 4], help="MB")
    parser.add_argument("--formats", nargs="+", default=["csv", "txt", "pdf"], choices=FORMATS)
    parser.add_argument("--chunk-size", type=int, default=254, help="the shipped MiniLM's window")
    args = parser.parse_args()
    print(
        f"{'input':>13} | {'before MB/s':>11} {'MB/MB':>7} | {'after MB/s':>10} {'MB/MB':>7} "
        f"| {'speed x':>7} {'memory /':>8} | chunks   (MB/s: per CPU second; MB/MB: peak rise)"
    )
    for fmt in args.formats:
        for mb in args.sizes:
            runs = {name: in_child(name, fmt, int(mb * 1e6), args.chunk_size) for name in CHUNKERS}
            before, after = runs["before"], runs["after"]
            assert before["chunks"] == after["chunks"], runs
            input_mb = after["bytes"] / 1e6
            rate = {k: input_mb / r["seconds"] for k, r in runs.items()}
            per_mb = {k: r["growth"] / 2**20 / input_mb for k, r in runs.items()}
            print(
                f"{fmt:>4} {input_mb:5.2f} MB | {rate['before']:11.2f} {per_mb['before']:7.1f} "
                f"| {rate['after']:10.2f} {per_mb['after']:7.1f} "
                f"| {rate['after'] / rate['before']:7.2f} "
                f"{per_mb['before'] / max(per_mb['after'], 0.1):8.0f} | {after['chunks']:.0f}"
            )


if __name__ == "__main__":
    main()
