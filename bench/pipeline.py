"""End-to-end ingestion time: N SciFact documents dropped into a bucket until all are searchable.

Compares, on the same files and machine:
  * `rag ingest` in one process (`Ingestion.run`: batches of `ingest_batch_docs` per model call);
  * real worker processes (`celery -A workers.app worker --pool=threads`, beat every second), timed
    from the moment the files land in the watched folder until a scan that started after that
    finds the index complete (what a user waits for), with 1 and 2 threads;
  * 2 worker processes, only in distributed mode: it needs a Qdrant server (`--qdrant-url`),
    since the embedded shard admits one process. Without one this row says so and is not run.

Model loading and worker start-up are outside every timing. Each run starts from an empty data
dir (empty embedding cache). Usage: python bench/pipeline.py --docs 1000

With --small: N one-paragraph files (a SciFact title and the abstract's first sentences) dropped
at once into the bucket of a running `rag up` (API, worker pool, beat and the folder watcher in
one process, default settings), timed until the manifest shows every one indexed (searchable),
beside the raw embedding time of the same texts in this process, with the same model, backend
and threads: the ratio raw / pipeline is the share of the wait that is the model's work.
--profile FILE records the `rag up` process with py-spy (every thread, collapsed stacks) to FILE.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

# Run as a script: bench/ is first on sys.path and its ingest.py would shadow the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.embedding import Embedder
from core.manifest import Manifest
from core.onnx_models import InferenceOptions
from core.settings import Settings
from ingest.bucket import LocalBucket
from ingest.status import read_status
from serving.platform import Platform
from tests.support.workers import converged
from workers.process import WorkerProcess

CORPUS = Path("/work/shared/data/scifact/corpus.jsonl")


def write_corpus(folder: Path, n: int) -> int:
    """SciFact abstracts as text files (title, blank line, abstract); returns bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    with CORPUS.open() as lines:
        for i, line in enumerate(lines):
            if i == n:
                break
            doc = json.loads(line)
            written += (folder / f"{doc['_id']}.txt").write_text(f"{doc['title']}\n\n{doc['text']}")
    return written


def small_texts(n: int) -> list[tuple[str, str]]:
    """(file name, one paragraph): a SciFact title and up to two sentences of its abstract."""
    out: list[tuple[str, str]] = []
    with CORPUS.open() as lines:
        for line in lines:
            if len(out) == n:
                break
            doc = json.loads(line)
            sentences = re.split(r"(?<=\.) ", doc["text"])[:2]
            out.append((f"{doc['_id']}.txt", f"{doc['title']}. {' '.join(sentences)}"))
    return out


def _indexed(manifest: Manifest) -> int:
    return read_status(manifest).counts.get("indexed", 0)


def bench_small_up(work: Path, n: int, redis_url: str, profile: Path | None) -> None:
    """Files dropped into a running `rag up` until searchable, beside raw embedding."""
    files = small_texts(n)
    root = work / "up"
    (root / "bucket").mkdir(parents=True)
    Redis.from_url(redis_url).flushdb()
    env = {
        "RAG_DATA_DIR": str(root / "data"),
        "RAG_BUCKET_URL": str(root / "bucket"),
        "RAG_REDIS_URL": redis_url,
        "RAG_API_PORT": str(_free_port()),
    }
    settings = Settings(data_dir=root / "data", bucket_url=str(root / "bucket"))
    embedder = Embedder(
        settings.models.embedding_model,
        settings.models.embedding_batch_size,
        settings.models.query_prefix,
        InferenceOptions.from_settings(settings),
    )
    # Before and after the pipeline, averaged: the load other work puts on the machine drifts.
    raw_before = _raw_embedding(embedder, [t for _, t in files])
    code = "from core.settings import get_settings; from workers.embedded import run_up; "
    code += "run_up(get_settings())"
    argv = [sys.executable, "-c", code]
    if profile is not None:
        argv = ["py-spy", "record", "-r", "50", "-f", "raw", "-o", str(profile), "--", *argv]
    log = root / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )  # fmt: skip
    manifest = None
    try:
        deadline = time.monotonic() + 600
        while not (settings.manifest_path.exists() and (root / "data" / "shard").exists()):
            if up.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rag up did not start: see {log}")
            time.sleep(0.2)
        manifest = Manifest.at(settings.manifest_path)
        while manifest.get_meta("last_scan") is None:  # the first (empty) scan ran: it is up
            if up.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rag up did not scan: see {log}")
            time.sleep(0.2)
        start = time.time()
        for name, text in files:
            (root / "bucket" / name).write_text(text)
        while _indexed(manifest) < n:
            if up.poll() is not None or time.monotonic() > deadline + 3600:
                raise RuntimeError(f"rag up stopped or stalled: see {log}")
            time.sleep(0.1)
        pipeline = time.time() - start
    finally:
        if manifest is not None:
            manifest.close()
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT if profile is not None else signal.SIGTERM)
            try:
                up.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)

    raw_after = _raw_embedding(embedder, [t for _, t in files])
    raw = (raw_before + raw_after) / 2
    print(f"{n} one-paragraph files into a running `rag up` ({embedder.backend}):")
    print(f"  until all searchable     {pipeline:8.1f} s  ({n / pipeline:.1f} docs/s)")
    print(
        f"  raw embedding, same texts{raw:8.1f} s  ({n / raw:.1f} docs/s; "
        f"{raw_before:.1f} s before, {raw_after:.1f} s after)"
    )
    print(f"  ratio raw / pipeline     {raw / pipeline:8.2f}   (target >= 0.7)")


def _raw_embedding(embedder: Embedder, texts: list[str]) -> float:
    """Seconds to embed `texts` in calls of 160, as ingestion makes them."""
    embedder.embed_documents(texts[:16])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), 160):
        embedder.embed_documents(texts[i : i + 160])
    return time.perf_counter() - started


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_single_process(work: Path, source: Path) -> tuple[float, int]:
    bucket_dir = work / "single" / "bucket"
    shutil.copytree(source, bucket_dir)
    settings = Settings(data_dir=work / "single" / "data", bucket_url=str(bucket_dir))
    with Platform.open(settings) as platform:
        ingestion = platform.ingestion_of(LocalBucket(bucket_dir))
        platform.runtime.embedder.embed_documents(["warm-up"])
        start = time.perf_counter()
        summary = ingestion.run()
        seconds = time.perf_counter() - start
        return seconds, summary.added


def _env(root: Path, redis_url: str, extra: dict[str, str]) -> dict[str, str]:
    return {
        "RAG_DATA_DIR": str(root / "data"),
        "RAG_BUCKET_URL": str(root / "bucket"),
        "RAG_REDIS_URL": redis_url,
        "RAG_SCAN_INTERVAL_SECONDS": "1",
        **extra,
    }


def _wait(manifest: Manifest, since: float, workers: list[WorkerProcess], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not converged(manifest, since):
        if time.monotonic() > deadline or not all(w.alive for w in workers):
            raise RuntimeError(f"workers did not converge: see {workers[0].log}")
        time.sleep(0.2)


def bench_workers(
    work: Path,
    source: Path,
    name: str,
    processes: int,
    threads: int,
    redis_url: str,
    extra: dict[str, str],
) -> tuple[float, int]:
    root = work / name
    (root / "bucket").mkdir(parents=True)
    Redis.from_url(redis_url).flushdb()
    env = _env(root, redis_url, extra)
    settings = Settings(**{k.removeprefix("RAG_").lower(): v for k, v in env.items()})
    workers = [
        WorkerProcess(settings, env, root / f"worker{i}.log", concurrency=threads, beat=i == 0)
        for i in range(processes)
    ]
    manifest = Manifest.at(settings.manifest_path)
    try:
        ready = time.time()
        for w in workers:
            w.start()
        _wait(manifest, ready, workers, timeout=600)  # started, and a first (empty) scan ran
        start = time.time()
        for f in source.iterdir():  # the drop: files appear in the watched folder
            shutil.copy2(f, root / "bucket" / f.name)
        _wait(manifest, start, workers, timeout=3600)
        seconds = time.time() - start
        indexed = read_status(manifest).counts["indexed"]
    finally:
        manifest.close()
        for w in workers:
            w.stop()
    return seconds, indexed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12", help="flushed!")
    parser.add_argument("--qdrant-url", help="a Qdrant server, for 2 worker processes")
    parser.add_argument("--small", action="store_true", help="one-paragraph files, `rag up`")
    parser.add_argument("--profile", type=Path, help="with --small: py-spy profile to this file")
    args = parser.parse_args()

    if args.small:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            bench_small_up(Path(tmp), args.docs, args.redis_url, args.profile)
        return

    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        work = Path(tmp)
        source = work / "source"
        size = write_corpus(source, args.docs)
        n = len(list(source.iterdir()))
        print(f"{n} SciFact documents, {size / 1e6:.1f} MB of text, in {work}")
        rows: list[tuple[str, float | None, int, str]] = []
        seconds, added = bench_single_process(work, source)
        rows.append(("rag ingest, one process (Ingestion.run)", seconds, added, ""))
        for threads in (1, 2):
            seconds, indexed = bench_workers(
                work, source, f"w1t{threads}", 1, threads, args.redis_url, {}
            )
            rows.append((f"1 worker process, {threads} thread(s)", seconds, indexed, ""))
        if args.qdrant_url:
            server = {"RAG_INDEX_MODE": "server", "RAG_QDRANT_URL": args.qdrant_url}
            server["RAG_COLLECTION"] = f"bench_{int(time.time())}"
            seconds, indexed = bench_workers(work, source, "w2", 2, 1, args.redis_url, server)
            rows.append(("2 worker processes, 1 thread each (Qdrant server)", seconds, indexed, ""))
        else:
            rows.append(
                (
                    "2 worker processes",
                    None,
                    0,
                    "not run: the embedded shard admits one process; pass --qdrant-url",
                )
            )

    base = rows[0][1] or 1.0
    print(f"\n{'pipeline':<52} {'seconds':>8} {'docs':>6} {'docs/s':>7} {'vs ingest':>9}")
    for label, secs, docs, note in rows:
        if secs is None:
            print(f"{label:<52} {'-':>8} {'-':>6} {'-':>7} {'-':>9}  {note}")
            continue
        print(f"{label:<52} {secs:8.1f} {docs:6d} {docs / secs:7.1f} {secs / base:8.2f}x")


if __name__ == "__main__":
    main()
