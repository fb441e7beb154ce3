"""Ingestion throughput against the embedding model's own ceiling, and the cost of a no-op re-scan.

    python bench/ingest.py [--docs N] [--dataset ../shared/data/scifact]

Writes the BEIR corpus out as one .txt file per document (title, blank line, text) into a scratch
bucket, then in one process:
  1. cold `Ingestion.run()` into a fresh embedded shard: chunks/s end to end;
  2. the same model embedding the same chunk texts in one call: the raw chunks/s ceiling;
  3. a second scan with nothing changed: seconds and embedding calls (should be 0).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.runtime import Runtime  # noqa: E402
from core.settings import Settings  # noqa: E402
from ingest.service import Ingestion, open_bucket  # noqa: E402

WORK = ROOT / "bench" / ".work"


def write_bucket(dataset: Path, bucket: Path, limit: int | None) -> int:
    if bucket.exists():
        shutil.rmtree(bucket)
    bucket.mkdir(parents=True)
    n = 0
    with (dataset / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            if limit is not None and n >= limit:
                break
            row = json.loads(line)
            (bucket / f"{row['_id']}.txt").write_text(f"{row['title']}\n\n{row['text']}")
            n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--docs", type=int, default=None, help="first N documents only")
    args = parser.parse_args()

    bucket, data = WORK / "ingest-bucket", WORK / "ingest-data"
    docs = write_bucket(args.dataset, bucket, args.docs)
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(data_dir=data, bucket_url=str(bucket))

    with Runtime(settings) as rt:
        rt.embedder.embed_documents(["warm up the model"] * 64)
        ingestion = Ingestion(rt, open_bucket(settings.bucket_url))

        start = time.perf_counter()
        cold = ingestion.run()
        cold_s = time.perf_counter() - start
        chunks = cold.chunks_embedded

        texts = [p["text"] for _, p in rt.index.scroll(None, ("text",))]
        start = time.perf_counter()
        rt.embedder.embed_documents(texts)
        raw_s = time.perf_counter() - start

        before = rt.embedder.texts_embedded
        start = time.perf_counter()
        warm = ingestion.run()
        rescan_s = time.perf_counter() - start
        rescan_embeds = rt.embedder.texts_embedded - before

    ingest_rate, raw_rate = chunks / cold_s, len(texts) / raw_s
    rows = [
        ("documents", f"{docs}", ""),
        ("chunks", f"{chunks}", f"{len(texts)} in the index"),
        ("cold ingest", f"{cold_s:.1f} s", f"{ingest_rate:.1f} chunks/s"),
        ("raw embedding, same chunks", f"{raw_s:.1f} s", f"{raw_rate:.1f} chunks/s"),
        ("ingest / raw embedding", f"{ingest_rate / raw_rate:.2f}", "target >= 0.90"),
        ("unchanged re-scan", f"{rescan_s:.2f} s", "target <= 2 s for 5k docs"),
        ("re-scan embeddings", f"{rescan_embeds}", f"unchanged={warm.unchanged}, target 0"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"bench/ingest.py  model={Path(settings.embedding_model).name}  index=edge")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main()
