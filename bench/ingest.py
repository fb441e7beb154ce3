"""Ingestion throughput against the embedding model's own ceiling, and the cost of a no-op re-scan.

    python bench/ingest.py [--docs N] [--dataset ../shared/data/scifact]
    python bench/ingest.py --cli [--docs 300] [--rounds 2]

Writes the BEIR corpus out as one .txt file per document (title, blank line, text) into a scratch
bucket, then in one process:
  1. cold `Ingestion.run()` into a fresh embedded shard: chunks/s end to end;
  2. the same model embedding the same chunk texts in one call: the raw chunks/s ceiling;
  3. a second scan with nothing changed: seconds and embedding calls (should be 0).

With --cli, what a user waits for instead: `rag ingest` of the bucket as a whole process into a
fresh data dir (start-up, model load, sync, vector index), the median of --rounds runs, on torch
(the peer), on ONNX with an empty export cache (what every fresh data dir paid while exports
lived in RAG_DATA_DIR/onnx), and on ONNX with the machine's shared export cache (the default,
warmed by `rag models export` first). The rows take turns round by round, so a machine loaded by
other work slows them alike; the CPU seconds of each process, which such load disturbs less than
wall time, are shown beside.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
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
RAG = [sys.executable, "-c", "from cli.main import main; main()"]  # `rag`, from this checkout


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
    parser.add_argument("--cli", action="store_true", help="time `rag ingest` processes instead")
    parser.add_argument("--rounds", type=int, default=2, help="with --cli: runs of each row")
    args = parser.parse_args()

    bucket, data = WORK / "ingest-bucket", WORK / "ingest-data"
    docs = write_bucket(args.dataset, bucket, args.docs)
    if args.cli:
        bench_cli(bucket, docs, args.rounds)
        return
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


def bench_cli(bucket: Path, docs: int, rounds: int) -> None:
    """Seconds of `rag ingest BUCKET` into a fresh data dir, per row, as the user waits for it."""
    rows = {
        "torch": {"RAG_INFERENCE_BACKEND": "torch"},
        "onnx, empty export cache": {"RAG_INFERENCE_BACKEND": "onnx", "RAG_ONNX_EXPORT_DIR": ""},
        "onnx, shared export cache": {"RAG_INFERENCE_BACKEND": "onnx"},
    }
    ours = ("RAG_DATA_DIR", "RAG_INFERENCE_BACKEND", "RAG_ONNX_EXPORT_DIR", "RAG_BUCKET_URL")
    base = {k: v for k, v in os.environ.items() if k not in ours} | {"PYTHONPATH": str(ROOT)}
    subprocess.run([*RAG, "models", "export"], env=base, check=True, capture_output=True)
    seconds: dict[str, list[float]] = {name: [] for name in rows}
    cpu: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, env in rows.items():
            data = WORK / "cli-data"
            shutil.rmtree(data, ignore_errors=True)
            env = base | env | {"RAG_DATA_DIR": str(data)}
            if env.get("RAG_ONNX_EXPORT_DIR") == "":
                env["RAG_ONNX_EXPORT_DIR"] = str(data / "onnx")  # where exports lived
            start, cpu_start = time.perf_counter(), _children_cpu()
            done = subprocess.run([*RAG, "ingest", str(bucket)], env=env, capture_output=True)
            seconds[name].append(time.perf_counter() - start)
            cpu[name].append(_children_cpu() - cpu_start)
            if done.returncode != 0:
                sys.exit(f"rag ingest failed ({name}):\n{done.stderr.decode()[-3000:]}")
    shutil.rmtree(WORK / "cli-data", ignore_errors=True)
    torch, torch_cpu = statistics.median(seconds["torch"]), statistics.median(cpu["torch"])
    width = max(map(len, rows))
    print(f"bench/ingest.py --cli  rag ingest of {docs} documents into a fresh data dir")
    print(f"  {'':<{width}}  {'median':>8}  {'runs':<16}  {'torch/row':>9}  {'CPU':>7}  torch/row")
    for name, runs in seconds.items():
        median, median_cpu = statistics.median(runs), statistics.median(cpu[name])
        each = " ".join(f"{s:.1f}" for s in runs)
        print(
            f"  {name:<{width}}  {median:>6.1f} s  {each:<16}  {torch / median:>8.2f}x"
            f"  {median_cpu:>5.1f} s  {torch_cpu / median_cpu:.2f}x"
        )


def _children_cpu() -> float:
    """CPU seconds (user and system) of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
