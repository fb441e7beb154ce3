"""Index lifecycle figures: the vector index built under `rag up` while a client searches, and
rebuild speed after a configuration change.

    python bench/index_lifecycle.py --docs 20000 --seconds 120 --workdir /tmp/bench-lifecycle

is issue 14's scenario (the defaults: `python bench/index_lifecycle.py` runs the same):

1. `--docs` one-sentence documents are ingested without the vector index (in process).
2. `rag up` starts with a `--threshold`-point threshold (1,000) and builds it; a client searches
   its API every 100 ms for `--seconds`, polling status for indexed vectors against points.
   Printed: the worst and median search, errors, when status showed the index built, and the
   verdict against the issue's bar (worst search under 1 s, 0 errors, status shows it built).
3. The peer, same shard, same run: the engine's optimiser called in process (as before the child
   process build), with a search every 100 ms in another thread: the longest a search waited.
4. `rag reindex` with another chunk size: documents/s, chunks embedded and embeddings reused.
5. `rag reindex` with another embedding model (MiniLM with CLS pooling: the same weights, another
   vector space), which re-embeds every chunk: documents/s, and the ratio to the cold ingest's.

Every figure line ends with the load average (1, 5, 15 min) when it was printed.

Needs a Redis at RAG_REDIS_URL (`rag up` starts one otherwise).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.models import cls_pooling_copy  # noqa: E402

ADMIN_KEY = "bench-lifecycle-admin-key"
SUBJECTS = ["glaciers", "volcanoes", "reefs", "deserts", "forests", "rivers", "moons", "comets"]


def write_corpus(bucket: Path, n: int) -> None:
    bucket.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        subject = SUBJECTS[i % len(SUBJECTS)]
        (bucket / f"d{i:05d}.txt").write_text(
            f"Note {i} records fact {i * 7919 % 10007} on {subject}."
        )


def ingest_without_vector_index(env: dict[str, str]) -> float:
    code = (
        "from core.settings import Settings; from serving.platform import Platform; "
        "p = Platform.open(Settings()); p.ingestion.run(); p.close()"
    )
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - started


def load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def build_under_rag_up(
    env: dict[str, str], port: int, seconds: float, threshold: int, log: Path
) -> dict:
    up_env = {
        **env,
        "RAG_API_PORT": str(port),
        "RAG_ADMIN_API_KEY": ADMIN_KEY,
        "RAG_INDEX_OPTIMIZE_MIN_UNINDEXED": str(threshold),
        "RAG_INDEX_OPTIMIZE_INTERVAL_SECONDS": "5",
        "RAG_SCAN_INTERVAL_SECONDS": "600",
    }
    code = "from core.settings import get_settings; from workers.embedded import run_up; "
    code += "run_up(get_settings())"
    with log.open("wb") as out:
        up = subprocess.Popen([sys.executable, "-c", code], env=up_env, stdout=out, stderr=out)
    latencies: list[tuple[float, float]] = []  # (seconds into the run, latency)
    errors, built_at = 0, None
    status: dict = {}
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": ADMIN_KEY}, timeout=30
        )
        while True:
            try:
                client.get("/healthz")
                break
            except httpx.TransportError:
                if up.poll() is not None:
                    raise SystemExit(log.read_text()[-3000:]) from None
                time.sleep(0.5)
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < seconds:
            body = {"query": f"fact {i} on {SUBJECTS[i % len(SUBJECTS)]}", "top_k": 10}
            t = time.perf_counter()
            try:
                ok = client.post("/v1/search", json=body).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.monotonic() - started, time.perf_counter() - t))
            errors += not ok
            if i % 10 == 0:
                status = client.get("/v1/status").json()["index"]
                if built_at is None and status["indexed_chunks"] >= status["chunks"] > 0:
                    built_at = time.monotonic() - started
            i += 1
            time.sleep(0.1)
        client.close()
    finally:
        up.terminate()
        up.wait(timeout=120)
    during = [lat for at, lat in latencies if built_at is None or at <= built_at]
    after = [lat for at, lat in latencies if built_at is not None and at > built_at] or [0.0]
    return {
        "searches": len(latencies),
        "errors": errors,
        "worst_run_s": max(lat for _, lat in latencies),
        "worst_s": max(during),
        "median_s": statistics.median(during),
        "worst_after_s": max(after),
        "median_after_s": statistics.median(after),
        "built_after_s": built_at,
        "status": status,
    }


def in_process_peer(shard: Path, dim: int) -> dict:
    """The engine's optimiser in this process, a search every 100 ms in another thread."""
    import qdrant_edge as qe

    from core.index.edge import edge_config

    engine = qe.EdgeShard.load(str(shard), edge_config(dim, 1000))
    done = threading.Event()
    answered: list[float] = []  # when each search returned

    def search() -> None:
        rng = np.random.default_rng(0)
        while not done.is_set():
            vector = rng.standard_normal(dim).astype(np.float32).tolist()
            engine.query(qe.QueryRequest(limit=10, query=qe.Query.Nearest(vector, using="dense")))
            answered.append(time.perf_counter())
            time.sleep(0.1)

    searcher = threading.Thread(target=search)
    started = time.perf_counter()
    searcher.start()
    engine.optimize()
    finished = time.perf_counter()
    done.set()
    searcher.join()
    engine.close()
    # The longest wait between two answers, less the client's own 100 ms pause; a search not
    # answered before the build ended waited for all of it.
    marks = [started, *(t for t in answered if t <= finished), finished]
    worst = max(b - a for a, b in itertools.pairwise(marks)) - 0.1
    return {"optimize_s": finished - started, "worst_s": worst}


def reindex(env: dict[str, str], chunk_size: int, model: Path | None = None) -> str:
    """`rag reindex` to `chunk_size` (and `model`, if given); its last line, on one line."""
    changed = {"RAG_CHUNK_SIZE": str(chunk_size), "RAG_CHUNK_OVERLAP": "8", "COLUMNS": "200"}
    if model is not None:
        changed["RAG_EMBEDDING_MODEL"] = str(model)
    out = subprocess.run(
        [sys.executable, "-c", "from cli.main import main; main()", "reindex"],
        env={**env, **changed},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return re.sub(r"\s+", " ", out.strip().splitlines()[-1] if out.strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-lifecycle"))
    parser.add_argument("--port", type=int, default=8917)
    parser.add_argument("--threshold", type=int, default=1000, help="points before HNSW is built")
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    bucket, data = args.workdir / "bucket", args.workdir / "data"
    write_corpus(bucket, args.docs)
    env = {**os.environ, "RAG_DATA_DIR": str(data), "RAG_BUCKET_URL": str(bucket)}
    ingest_s = ingest_without_vector_index(env)
    print(
        f"ingested {args.docs} one-sentence documents in {ingest_s:.1f}s "
        f"({args.docs / ingest_s:.1f} documents/s), no vector index ({load()})"
    )
    peer_copy = args.workdir / "peer-shard"
    shutil.copytree((data / "shard").resolve(), peer_copy)

    up = build_under_rag_up(env, args.port, args.seconds, args.threshold, args.workdir / "up.log")
    s = up["status"]
    print(
        f"rag up, {args.threshold:,}-point threshold, a search every 100 ms for "
        f"{args.seconds:.0f}s: "
        f"{up['searches']} searches, {up['errors']} errors; while building: worst "
        f"{up['worst_s'] * 1000:.0f} ms, median {up['median_s'] * 1000:.0f} ms; once built: worst "
        f"{up['worst_after_s'] * 1000:.0f} ms, median {up['median_after_s'] * 1000:.0f} ms; "
        f"status: {s['indexed_chunks']} of {s['chunks']} chunks indexed (built after "
        f"{up['built_after_s'] or float('nan'):.0f}s) ({load()})"
    )
    built = s["chunks"] > 0 and s["indexed_chunks"] >= s["chunks"]
    verdict = {
        f"worst search {up['worst_run_s'] * 1000:.0f} ms under 1 s": up["worst_run_s"] < 1.0,
        f"{up['errors']} errors": up["errors"] == 0,
        "status shows the index built": built,
    }
    marks = "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in verdict.items())
    print(f"issue 14's bar: {marks}")
    peer = in_process_peer(peer_copy, 384)
    print(
        f"peer, optimiser in process: {peer['optimize_s']:.1f}s build, a search waited up to "
        f"{peer['worst_s']:.1f}s ({peer['worst_s'] / up['worst_s']:.0f}x the worst under rag up) "
        f"({load()})"
    )
    print(f"rag reindex, chunk size 128 (a chunking-only change): {reindex(env, 128)} ({load()})")
    line = reindex(env, 128, cls_pooling_copy(args.workdir / "minilm-cls"))
    rate = re.search(r"([\d.]+) documents/s", line)
    versus = (
        f"; {float(rate.group(1)) / (args.docs / ingest_s):.2f}x the cold ingest's documents/s"
        if rate
        else ""
    )
    print(f"rag reindex, embedding model -> MiniLM with CLS pooling: {line}{versus} ({load()})")


if __name__ == "__main__":
    main()
