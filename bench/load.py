"""A bounded load test on loopback: concurrent clients searching while documents change.

    python bench/load.py [--clients 20] [--seconds 60] [--docs 500]

`rag up` runs as its own process (API, worker pool, beat and watcher) over N SciFact abstracts,
ingested first. Then:

1. Steady load: `--clients` threads for `--seconds`, each looping: 9 in 10 a search (a SciFact
   test query, random mode and top_k), 1 in 10 a change to the bucket (a new document, an edit or
   a delete) that the watcher and workers ingest while the searches go on. Reported: requests,
   errors (anything but 200, and any transport error), p50/p95/p99 latency, throughput, the
   server's resident memory sampled every second (first, last and peak), and whether every
   document written during the run is indexed afterwards.
2. Overload: the server restarted with `RAG_API_MAX_INFLIGHT=4` and twice the clients for 20 s.
   Requests past the limit must come back at once as 503 with Retry-After (counted as shed, not
   as errors); none may time out or fail at the transport. Clients wait as Retry-After says.

Embeddings of the corpus come from the quality bench's cache when it exists (keyed by model and
chunk hash), so the set-up embeds nothing already embedded there.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.manifest import DocStatus, Manifest  # noqa: E402
from workers.redis_server import free_port  # noqa: E402

WORK = ROOT / "bench" / ".work" / "load"
SEED_CACHE = ROOT / "bench/.work/quality/eval/scifact/data/embeddings.sqlite"
ADMIN = "load-bench-operator-key"
DATASET = ROOT.parent / "shared/data/scifact"


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    shed: int = 0
    retry_after_missing: int = 0
    changes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def corpus(n: int) -> list[tuple[str, str]]:
    docs = []
    with (DATASET / "corpus.jsonl").open() as f:
        for line in f:
            d = json.loads(line)
            docs.append((d["_id"], f"{d['title']}\n\n{d['text']}"))
    return docs[: n + 2_000]  # the tail feeds the additions during the run


def queries() -> list[str]:
    with (DATASET / "queries.jsonl").open() as f:
        return [json.loads(line)["text"] for line in f][:1_000]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    """`rag up` in its own process group, on a free port, with the bench's data dir."""

    def __init__(self, data: Path, bucket: Path, extra: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "RAG_DATA_DIR": str(data),
            "RAG_BUCKET_URL": str(bucket),
            "RAG_API_PORT": str(self.port),
            "RAG_ADMIN_API_KEY": ADMIN,
            "RAG_SCAN_INTERVAL_SECONDS": "10",
            "RAG_GRAPH_ENABLED": "false",
            **extra,
        }
        self.log = (data.parent / f"up-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "up"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rag up did not start; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=120)
        self.log.close()


def client_loop(
    url: str, until: float, tally: Tally, rnd: random.Random, qs: list[str], change: object
) -> None:
    with httpx.Client(base_url=url, timeout=60, headers={"X-API-Key": ADMIN}) as client:
        while time.monotonic() < until:
            if change is not None and rnd.random() < 0.1:
                change(rnd)  # type: ignore[operator]
                with tally.lock:
                    tally.changes += 1
                continue
            body = {
                "query": rnd.choice(qs),
                "mode": rnd.choice(["hybrid", "hybrid", "dense", "bm25"]),
                "top_k": rnd.choice([5, 10, 20]),
            }
            start = time.perf_counter()
            try:
                r = client.post("/v1/search", json=body)
            except httpx.TransportError as exc:
                with tally.lock:
                    tally.errors.append(f"transport: {exc!r}")
                continue
            ms = (time.perf_counter() - start) * 1000
            if r.status_code == 503:  # a well-behaved client waits as told, with jitter
                time.sleep(float(r.headers.get("retry-after", 1)) * rnd.uniform(1.0, 1.5))
            with tally.lock:
                if r.status_code == 200:
                    tally.latencies_ms.append(ms)
                elif r.status_code == 503 and r.json()["error"]["code"] == "overloaded":
                    tally.shed += 1
                    tally.retry_after_missing += "retry-after" not in r.headers
                else:
                    tally.errors.append(f"{r.status_code}: {r.text[:200]}")


def run_phase(server: Server, clients: int, seconds: float, qs: list[str], change: object) -> tuple:
    tally, samples = Tally(), []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=client_loop,
            args=(server.url, until, tally, random.Random(i), qs, change),
        )
        for i in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        samples.append(rss_mb(server.process.pid))
        time.sleep(1)
    for t in threads:
        t.join()
    return tally, samples, time.perf_counter() - started


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else 0.0


def report(name: str, tally: Tally, samples: list[float], wall: float) -> None:
    ok = len(tally.latencies_ms)
    print(f"\n{name}")
    print(f"  searches answered   {ok}  ({ok / wall:.1f}/s over {wall:.0f}s)")
    print(f"  bucket changes      {tally.changes}")
    print(f"  errors              {len(tally.errors)}")
    for e in tally.errors[:5]:
        print(f"    {e}")
    print(f"  shed with 503       {tally.shed}  (without Retry-After: {tally.retry_after_missing})")
    if ok:
        print(
            f"  latency ms          p50 {pct(tally.latencies_ms, 50):.1f}  "
            f"p95 {pct(tally.latencies_ms, 95):.1f}  p99 {pct(tally.latencies_ms, 99):.1f}  "
            f"mean {statistics.mean(tally.latencies_ms):.1f}"
        )
    if samples:
        every = max(1, len(samples) // 6)
        trace = " ".join(f"{m:.0f}" for m in samples[::every])
        last, peak = samples[-1], max(samples)
        print(f"  server RSS MB       every {every}s: {trace}; last {last:.0f}, peak {peak:.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--docs", type=int, default=500)
    args = parser.parse_args()

    shutil.rmtree(WORK, ignore_errors=True)
    data, bucket = WORK / "data", WORK / "bucket"
    data.mkdir(parents=True)
    bucket.mkdir()
    if SEED_CACHE.exists():
        shutil.copy(SEED_CACHE, data / "embeddings.sqlite")
    docs = corpus(args.docs)
    for doc_id, text in docs[: args.docs]:
        (bucket / f"{doc_id}.txt").write_text(text)
    spare = iter(docs[args.docs :])
    written: set[str] = set()
    guard = threading.Lock()

    def change(rnd: random.Random) -> None:
        """A new document, an edit of one written earlier, or its deletion."""
        with guard:
            roll = rnd.random()
            if roll < 0.6 or not written:
                doc_id, text = next(spare)
                (bucket / f"load-{doc_id}.txt").write_text(text)
                written.add(f"load-{doc_id}.txt")
            elif roll < 0.85:
                key = rnd.choice(sorted(written))
                (bucket / key).write_text(f"Edited during the load test.\n\n{rnd.random()}")
            else:
                key = rnd.choice(sorted(written))
                (bucket / key).unlink()
                written.discard(key)

    subprocess.run([sys.executable, "-m", "cli.main", "ingest", str(bucket)], cwd=ROOT, check=True,
                   env={**os.environ, "RAG_DATA_DIR": str(data), "RAG_GRAPH_ENABLED": "false"},
                   stdout=subprocess.DEVNULL)  # fmt: skip
    qs = queries()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.docs} SciFact documents, load average before: {load}")

    server = Server(data, bucket, {})
    try:
        tally, samples, wall = run_phase(server, args.clients, args.seconds, qs, change)
        report(f"steady: {args.clients} clients, {args.seconds:.0f}s, 1 in 10 a bucket change",
               tally, samples, wall)  # fmt: skip
        deadline = time.monotonic() + 300
        manifest = Manifest.at(data / "manifest.sqlite")
        while True:
            records = manifest.all()
            missing = [k for k in written if records.get(k) is None
                       or records[k].status != DocStatus.INDEXED]  # fmt: skip
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        manifest.close()
        print(f"  documents written during the run and still there: {len(written)}, "
              f"not indexed {len(missing)} after settling")  # fmt: skip
    finally:
        server.stop()

    server = Server(data, bucket, {"RAG_API_MAX_INFLIGHT": "4"})
    try:
        tally, samples, wall = run_phase(server, args.clients * 2, 20, qs, None)
        report(f"overload: {args.clients * 2} clients, 20s, RAG_API_MAX_INFLIGHT=4",
               tally, samples, wall)  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
