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
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.embedding import Embedder  # noqa: E402
from core.onnx_models import InferenceOptions  # noqa: E402
from core.settings import Settings  # noqa: E402
from serving.platform import Platform  # noqa: E402

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
    parser.add_argument("--backend", choices=["onnx", "torch"], help="default: the setting's")
    args = parser.parse_args()

    bucket, data = WORK / "ingest-bucket", WORK / "ingest-data"
    docs = write_bucket(args.dataset, bucket, args.docs)
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(data_dir=data, bucket_url=str(bucket))
    if args.backend:
        settings = settings.updated(inference_backend=args.backend)

    with Platform.open(settings) as platform:
        rt = platform.runtime
        rt.embedder.embed_documents(["warm up the model"] * 64)
        ingestion = platform.ingestion

        start = time.perf_counter()
        cold = ingestion.run()
        cold_s = time.perf_counter() - start
        chunks = cold.chunks_embedded

        texts = [p["text"] for _, p in rt.index.scroll(None, ("text",))]
        raw: dict[str, float] = {}
        for backend in ("torch", "onnx"):  # the same texts on each backend, in calls of 160
            options = InferenceOptions.from_settings(settings)
            options = dataclasses.replace(options, backend=backend)
            embedder = (
                rt.embedder
                if rt.embedder.backend == backend
                else Embedder(
                    settings.models.embedding_model,
                    settings.models.embedding_batch_size,
                    "",
                    options,
                )
            )
            embedder.embed_documents(["warm up the model"] * 64)
            start = time.perf_counter()
            for i in range(0, len(texts), 160):
                embedder.embed_documents(texts[i : i + 160])
            raw[backend] = time.perf_counter() - start

        before = rt.embedder.texts_embedded
        start = time.perf_counter()
        warm = ingestion.run()
        rescan_s = time.perf_counter() - start
        rescan_embeds = rt.embedder.texts_embedded - before

    ingest_rate = chunks / cold_s
    torch_rate, onnx_rate = len(texts) / raw["torch"], len(texts) / raw["onnx"]
    rows = [
        ("documents", f"{docs}", ""),
        ("chunks", f"{chunks}", f"{len(texts)} in the index"),
        ("cold ingest", f"{cold_s:.1f} s", f"{ingest_rate:.1f} chunks/s"),
        ("raw torch embedding, same chunks", f"{raw['torch']:.1f} s", f"{torch_rate:.1f} chunks/s"),
        ("raw ONNX embedding, same chunks", f"{raw['onnx']:.1f} s", f"{onnx_rate:.1f} chunks/s"),
        ("ingest / raw torch embedding", f"{ingest_rate / torch_rate:.2f}", "the peer's figure"),
        ("ingest / raw ONNX embedding", f"{ingest_rate / onnx_rate:.2f}", "target >= 0.90"),
        ("unchanged re-scan", f"{rescan_s:.2f} s", "target <= 2 s for 5k docs"),
        ("re-scan embeddings", f"{rescan_embeds}", f"unchanged={warm.unchanged}, target 0"),
    ]
    width = max(len(r[0]) for r in rows)
    print(
        f"bench/ingest.py  model={Path(settings.models.embedding_model).name}  index=edge  "
        f"ingest backend={rt.embedder.backend}"
    )
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>12}  {note}")


if __name__ == "__main__":
    main()
