"""Finding 2 of issue 23: one tenant's flood of reranked searches beside another tenant's searches.

    python bench/fairness.py [--docs 600] [--seconds 60] [--attackers 48] [--attack rerank|plain]
        [--peer ../main]

A real `rag serve` (the API alone, one process: the real embedding model and engine, and a
cross-encoder built from the shipped MiniLM weights, as the tests build it: no reranker is in the
local model cache, and MiniLM-L6 is the size of the common small cross-encoders) over SciFact
abstracts split between two tenants, acme and globex, ingested once into bench/.work/fairness
and kept for later runs. Two phases:

1. alone: one globex client sends plain hybrid searches (top_k 10) one after the other for
   `--seconds`;
2. flood: `--attackers` acme clients loop reranked searches (top_k 50, rerank, rerank_top_n 50;
   with `--attack plain`, plain searches of top_k 50), waiting as Retry-After says when shed,
   while the same globex client searches as before, for `--seconds` and until it has
   `--min-samples` answers (at most `--max-seconds`).

Printed: the victim's p50 and p95 alone and under the flood with their ratios (and of the time
the server spent searching, its `timings_ms.total`: the rest is waiting, for a key check, a slot,
the event loop, or the network), acme's answered searches a second and its 503s, and the load
average. With `--peer`, the same bench first runs another checkout's code serving the same data
dir (e.g. main before the fair pools: no setting brings first come, first served back), so both
are measured on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.settings import Settings  # noqa: E402
from tests.support.models import build_untrained_cross_encoder  # noqa: E402
from workers.redis_server import free_port  # noqa: E402

WORK = ROOT / "bench" / ".work" / "fairness"
DATASET = ROOT.parent / "shared/data/scifact"
VICTIM = {"top_k": 10}
ATTACKS = {"rerank": {"top_k": 50, "rerank": True, "rerank_top_n": 50}, "plain": {"top_k": 50}}


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    work_ms: list[float] = field(default_factory=list)  # the server's own timings: total
    shed: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def prepare(docs: int) -> dict[str, str]:
    """The bucket, the index, a reader key per tenant and the cross-encoder; the environment
    every server of the run shares."""
    bucket, data = WORK / "bucket", WORK / "data"
    with (DATASET / "corpus.jsonl").open() as f:
        for i, line in zip(range(docs), f, strict=False):
            doc = json.loads(line)
            path = bucket / "tenants" / ("acme", "globex")[i % 2] / f"{doc['_id']}.txt"
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{doc['title']}\n\n{doc['text']}")
    cross_encoder = WORK / "cross-encoder"
    if not (cross_encoder / "config.json").exists():
        build_untrained_cross_encoder(Settings().models.embedding_model, cross_encoder)
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(data),
        "RAG_BUCKET_URL": str(bucket),
        "RAG_RERANKER_MODEL": str(cross_encoder),
        "RAG_GRAPH_ENABLED": "false",
    }
    rag = [sys.executable, "-m", "cli.main"]
    subprocess.run([*rag, "ingest"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    for tenant in ("acme", "globex"):
        created = subprocess.run(
            [*rag, "keys", "create", tenant, "--json"],
            env=env, cwd=ROOT, check=True, capture_output=True, text=True,
        )  # fmt: skip
        env[f"BENCH_KEY_{tenant.upper()}"] = json.loads(created.stdout)["key"]
    return env


class Server:
    """`rag serve` from the checkout at `code`, in its own process group, on a free port."""

    def __init__(self, code: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = (WORK / f"serve-{self.port}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(self.port)],
            env={**env, "PYTHONPATH": str(code)},
            cwd=code,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 300
        while True:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rag serve did not start; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.5)

    def stop(self) -> None:
        """Killed, not drained: under the old code, the flood's queue takes minutes to end."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()


def client_loop(url: str, key: str, body: dict, queries: list[str], tally: Tally,
                stop: threading.Event, seed: int) -> None:  # fmt: skip
    rnd = random.Random(seed)
    with httpx.Client(base_url=url, timeout=900, headers={"X-API-Key": key}) as client:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                r = client.post("/v1/search", json={**body, "query": rnd.choice(queries)})
            except httpx.TransportError as exc:
                if not stop.is_set():
                    with tally.lock:
                        tally.errors.append(f"transport: {exc!r}")
                continue
            ms = (time.perf_counter() - start) * 1000
            with tally.lock:
                if r.status_code == 200:
                    tally.latencies_ms.append(ms)
                    tally.work_ms.append(r.json()["timings_ms"]["total"])
                elif r.status_code == 503 and r.json()["error"]["code"] == "overloaded":
                    tally.shed += 1
                else:
                    tally.errors.append(f"{r.status_code}: {r.text[:200]}")
            if r.status_code == 503:  # a well-behaved client waits as told, with jitter
                stop.wait(float(r.headers.get("retry-after", 1)) * rnd.uniform(1.0, 1.5))


def run_clients(url: str, key: str, body: dict, queries: list[str], clients: int,
                stop: threading.Event) -> tuple[Tally, list[threading.Thread]]:  # fmt: skip
    tally = Tally()
    threads = [
        threading.Thread(
            target=client_loop, args=(url, key, body, queries, tally, stop, i), daemon=True
        )
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    return tally, threads


def victim_phase(url: str, env: dict[str, str], queries: list[str], args: argparse.Namespace,
                 min_samples: int) -> Tally:  # fmt: skip
    stop = threading.Event()
    tally, threads = run_clients(url, env["BENCH_KEY_GLOBEX"], VICTIM, queries, 1, stop)
    started = time.monotonic()
    while time.monotonic() - started < args.max_seconds and (
        time.monotonic() - started < args.seconds or len(tally.latencies_ms) < min_samples
    ):
        time.sleep(0.5)
    stop.set()
    threads[0].join()
    return tally


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(name: str, code: Path, env: dict[str, str], queries: list[str],
            args: argparse.Namespace) -> None:  # fmt: skip
    server = Server(code, env)
    try:
        warm = httpx.Client(base_url=server.url, timeout=900)
        attack = ATTACKS[args.attack]
        for tenant, body in (("GLOBEX", VICTIM), ("ACME", attack)):  # models loaded, exported
            r = warm.post("/v1/search", json={**body, "query": queries[0]},
                          headers={"X-API-Key": env[f"BENCH_KEY_{tenant}"]})  # fmt: skip
            assert r.status_code == 200, r.text
        warm.close()
        print(f"\n{name} ({code}), load average before: {load()}", flush=True)
        alone = victim_phase(server.url, env, queries, args, min_samples=20)
        flood_stop = threading.Event()
        attackers, _ = run_clients(
            server.url, env["BENCH_KEY_ACME"], attack, queries, args.attackers, flood_stop
        )
        time.sleep(5)  # the flood fills the server first
        flood_started, answered_before = time.monotonic(), len(attackers.latencies_ms)
        flooded = victim_phase(server.url, env, queries, args, min_samples=args.min_samples)
        flood_seconds = time.monotonic() - flood_started
        attack_rate = (len(attackers.latencies_ms) - answered_before) / flood_seconds
        flood_stop.set()
        print(f"  load average after: {load()}")
    finally:
        server.stop()
    for label, tally in (("alone", alone), (f"flood of {args.attackers}", flooded)):
        ms, work = tally.latencies_ms, tally.work_ms
        print(f"  globex {label:12s} {len(ms):4d} searches  p50 {pct(ms, 50):9.1f} ms  "
              f"p95 {pct(ms, 95):9.1f} ms  (searching: p50 {pct(work, 50):.1f} ms, "
              f"p95 {pct(work, 95):.1f} ms)  errors {len(tally.errors)}")  # fmt: skip
    p50 = pct(flooded.latencies_ms, 50) / pct(alone.latencies_ms, 50)
    p95 = pct(flooded.latencies_ms, 95) / pct(alone.latencies_ms, 95)
    print(f"  globex under the flood / alone: p50 {p50:.1f}x  p95 {p95:.1f}x")
    print(
        f"  acme: {attack_rate:.2f} {args.attack} searches answered a second over "
        f"{flood_seconds:.0f} s, {attackers.shed} shed with 503, errors {len(attackers.errors)}"
    )
    for e in (attackers.errors + flooded.errors)[:3]:
        print(f"    {e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--min-samples", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--attackers", type=int, default=48)
    parser.add_argument("--attack", choices=sorted(ATTACKS), default="rerank")
    parser.add_argument("--peer", type=Path, help="another checkout, measured first")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    env = prepare(args.docs)
    with (DATASET / "queries.jsonl").open() as f:
        queries = [json.loads(line)["text"] for line in f][:300]
    print(f"{args.docs} SciFact abstracts, half acme's, half globex's; victim {VICTIM}, "
          f"attackers {ATTACKS[args.attack]}")  # fmt: skip
    if args.peer:
        measure("peer", args.peer.resolve(), env, queries, args)
    measure("this checkout", ROOT, env, queries, args)


if __name__ == "__main__":
    main()
