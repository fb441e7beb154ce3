"""What BM25 statistics per tenant cost (issue 13, finding 12), at 100 tenants.

    python bench/tenants.py --dataset ../shared/data/scifact --tenants 100 --chunks 100 \
        --queries 300 --workdir /tmp/bench-tenants

SciFact abstracts (cycled) as chunks, `--chunks` per tenant, with random 384-d vectors (what is
measured is the engine, not the model). The same points are stored twice:

- one shard, as `EdgeIndex` keeps them, its vector index built. Searched twice: with the BM25
  statistics of the query's tenant (an idf corpus, what `EdgeIndex` asks the engine for), and,
  as the peer, with the shard-wide statistics it used before (which leak across tenants);
- a shard per tenant (the other way to keep statistics per tenant), each too small to need a
  vector index.

Each layout is opened and searched in a fresh child process, so its resident memory is its own.
Printed per layout: open time; resident memory (anonymous and file-backed, beyond the child's
own before opening) after opening and after the searches; size on disk (blocks used); and
in-process engine latency (p50/p95) of BM25-only and hybrid (dense + BM25, RRF) queries, tenants
taken in turn; each with its ratio to the shared-statistics peer.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIM = 384
LAYOUTS = ("one shard, shared statistics", "one shard, tenant statistics", "a shard per tenant")


def tenant_ids(n: int) -> list[str]:
    return [f"t{i:03d}" for i in range(n)]


def load_texts(dataset: Path, name: str) -> list[str]:
    with (dataset / name).open() as f:
        return [json.loads(line)["text"] for line in f]


def rss_mib() -> tuple[float, float]:
    """Resident memory, (anonymous, file-backed): the engine maps its files, and the pages of
    those maps it touches count as resident though the kernel may drop them when memory is short.
    """
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0]) / 1024 if name.startswith("Rss") else 0
    return fields["RssAnon"], fields["RssFile"]


def disk_mib(folder: Path) -> float:
    """Blocks in use: the engine preallocates sparse files (a shard of 100 points is 450 MiB
    apparent, under 1 MiB used)."""
    total = 0  # not following links: `shard` links to a sibling folder, walked anyway
    for dirpath, _, files in os.walk(folder):
        total += sum(os.stat(Path(dirpath) / f).st_blocks * 512 for f in files)
    return total / 2**20


SETTINGS = None  # the shipped settings, read on first use


def _settings():
    global SETTINGS
    if SETTINGS is None:
        from core.settings import Settings

        SETTINGS = Settings()
    return SETTINGS


def text_config():  # the settings' tokenizer, as a served index has it
    from core.index.schema import TextIndexConfig

    return TextIndexConfig.from_settings(_settings().index)


def bm25():
    return _settings().index.bm25_k1, _settings().index.bm25_b


def optimize_at():
    return _settings().index.optimize_min_unindexed


def build(workdir: Path, dataset: Path, tenants: int, per_tenant: int) -> None:
    from core.index.edge import EdgeIndex
    from core.types import IndexedChunk

    texts = load_texts(dataset, "corpus.jsonl")
    rng = np.random.default_rng(13)
    shutil.rmtree(workdir, ignore_errors=True)
    cycle = itertools.cycle(texts)
    points: dict[str, list[IndexedChunk]] = {}
    for tenant in tenant_ids(tenants):
        vectors = rng.standard_normal((per_tenant, DIM)).astype(np.float32)
        points[tenant] = [
            IndexedChunk(
                str(uuid.uuid4()), v, {"tenant_id": tenant, "doc_id": f"d{i}", "text": next(cycle)}
            )
            for i, v in enumerate(vectors)
        ]
    started = time.perf_counter()
    one = EdgeIndex(workdir / "one" / "shard", DIM, text_config(), bm25(), 1_000)
    for batch in points.values():
        one.upsert(batch)
    one.optimize()
    one.close()
    print(
        f"built one shard of {tenants * per_tenant} points: {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    for tenant, batch in points.items():
        index = EdgeIndex(
            workdir / "per" / tenant / "shard", DIM, text_config(), bm25(), optimize_at()
        )
        index.upsert(batch)
        index.close()
    print(f"built {tenants} tenant shards: {time.perf_counter() - started:.1f} s")


def measure(layout: str, workdir: Path, dataset: Path, tenants: int, queries: int) -> dict:
    """In the child process: open the layout, search it, report."""
    from core.index import EngineQuery
    from core.index.edge import EdgeIndex
    from core.types import TenantScope

    class SharedStatistics(EdgeIndex):
        """The peer: BM25 over the whole shard, as before tenant statistics."""

        def _leg_params(self, query, leg):
            return None

    ids = tenant_ids(tenants)
    texts = load_texts(dataset, "queries.jsonl")[:queries]
    rng = np.random.default_rng(5)
    base = rss_mib()
    started = time.perf_counter()
    if layout == "a shard per tenant":
        folder = workdir / "per"
        indexes = {
            t: EdgeIndex(folder / t / "shard", DIM, text_config(), bm25(), optimize_at())
            for t in ids
        }
    else:
        folder = workdir / "one"
        kind = SharedStatistics if layout.endswith("shared statistics") else EdgeIndex
        shared = kind(folder / "shard", DIM, text_config(), bm25(), 1_000)
        indexes = dict.fromkeys(ids, shared)
    opened = time.perf_counter() - started
    anon, file = rss_mib()
    figures: dict = {
        "layout": layout,
        "open_s": opened,
        "anon_open_mib": anon - base[0],
        "file_open_mib": file - base[1],
    }
    for mode in ("bm25", "hybrid"):
        times = []
        for i, text in enumerate(itertools.islice(itertools.cycle(texts), queries + 20)):
            tenant = ids[i % len(ids)]
            dense = rng.standard_normal(DIM).astype(np.float32) if mode == "hybrid" else None
            query = EngineQuery(
                TenantScope(tenant),
                limit=10,
                dense=dense,
                text=text,
                candidates=_settings().retrieval.candidates_per_leg,
                rrf_k=_settings().retrieval.rrf_k,
                tie_fetch_limit=_settings().retrieval.tie_fetch_limit,
            )
            t0 = time.perf_counter()
            indexes[tenant].search(query)
            if i >= 20:  # the first 20 warm the caches
                times.append((time.perf_counter() - t0) * 1000)
        times.sort()
        figures[f"{mode}_p50_ms"] = statistics.median(times)
        figures[f"{mode}_p95_ms"] = times[int(len(times) * 0.95) - 1]
    anon, file = rss_mib()
    figures["anon_searched_mib"] = anon - base[0]
    figures["file_searched_mib"] = file - base[1]
    for index in set(indexes.values()):
        index.close()
    figures["disk_mib"] = disk_mib(folder)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=100, help="chunks per tenant")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-tenants"))
    parser.add_argument("--measure", choices=LAYOUTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        figures = measure(args.measure, args.workdir, args.dataset, args.tenants, args.queries)
        print(json.dumps(figures))
        return
    print(f"load average before: {os.getloadavg()}")
    build(args.workdir, args.dataset, args.tenants, args.chunks)
    results = []
    for layout in LAYOUTS:
        argv = [sys.executable, __file__, "--measure", layout, "--workdir", str(args.workdir)]
        argv += ["--dataset", str(args.dataset), "--tenants", str(args.tenants)]
        argv += ["--queries", str(args.queries)]
        out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    keys = ["open_s", "anon_open_mib", "file_open_mib", "anon_searched_mib", "file_searched_mib"]
    keys += ["disk_mib"]
    keys += ["bm25_p50_ms", "bm25_p95_ms", "hybrid_p50_ms", "hybrid_p95_ms"]
    print(f"\n{args.tenants} tenants x {args.chunks} chunks, {args.queries} queries per mode")
    print("| layout | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    peer = results[0]
    for r in results:
        cells = [
            f"{r[k]:.2f} ({r[k] / peer[k]:.2f}x)" if peer[k] > 0 else f"{r[k]:.2f}" for k in keys
        ]
        print(f"| {r['layout']} | " + " | ".join(cells) + " |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
