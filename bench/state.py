"""What the platform's shared state costs (issue 25): a scan's read of the manifest, a key lookup
per request, and the embedding cache's lookup and write per batch of 160 chunks.

    python bench/state.py [--documents 100000] [--chunks 10] [--postgres URL]

Every store on the embedded backend (SQLite in a temporary data dir) and, with `--postgres`, in
that PostgreSQL database too, in the same run.
The manifest holds `--documents` records of `--chunks` chunk ids each; a scan's read is timed both
ways in the same run: every record whole (`Manifest.all()`, what a scan read before issue 25)
against the narrow projection a scan reads now (`Manifest.object_states()`). Bytes read are the
process's `rchar` on SQLite (bytes returned by read(2), page cache included: what SQLite asked of
the file) and, on PostgreSQL, the size of the rows the server sends (`pg_column_size`, summed);
peak memory is tracemalloc's.
Each figure is the median of `--repeats` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.auth import KeyStore  # noqa: E402
from core.embedding import EmbeddingCache  # noqa: E402
from core.manifest import DocStatus, DocumentRecord, Manifest  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import TenantScope  # noqa: E402

BATCH = 160  # chunks a sync embeds per call
DIM = 384


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise KeyError("rchar")


def measure(work: Callable[[], object], repeats: int) -> tuple[float, int, int]:
    """Median seconds, bytes read and peak bytes of Python objects over `repeats` runs."""
    seconds, read, peaks = [], [], []
    for _ in range(repeats):
        tracemalloc.start()
        before, started = _rchar(), time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
        read.append(_rchar() - before)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return statistics.median(seconds), int(statistics.median(read)), int(statistics.median(peaks))


def fill_manifest(manifest: Manifest, documents: int, chunks: int) -> None:
    for start in range(0, documents, 5_000):
        manifest.put(
            *(
                DocumentRecord(
                    f"tenants/t{n % 10}/doc-{n}.txt",
                    f"t{n % 10}",
                    f"file:///bucket/tenants/t{n % 10}/doc-{n}.txt",
                    DocStatus.INDEXED,
                    size=1000 + n,
                    mtime=1.7e9 + n,
                    content_hash=uuid.uuid4().hex * 2,
                    chunk_ids=[str(uuid.uuid4()) for _ in range(chunks)],
                )
                for n in range(start, min(start + 5_000, documents))
            )
        )


def measure_stores(settings: Settings) -> tuple[float, float, float]:
    """Seconds per key lookup (among 100 keys), and per write and lookup of a batch of vectors."""
    keys = KeyStore.open(settings)
    tokens = [keys.create(TenantScope(f"t{n % 10}"), "reader")[0] for n in range(100)]
    lookups = 5_000
    started = time.perf_counter()
    for n in range(lookups):
        assert keys.verify(tokens[n % len(tokens)]) is not None
    key_lookup = (time.perf_counter() - started) / lookups
    keys.close()

    cache = EmbeddingCache.open(settings)
    rng = np.random.default_rng(0)
    batches = 50
    hashes = [[uuid.uuid4().hex for _ in range(BATCH)] for _ in range(batches)]
    vectors = rng.standard_normal((batches, BATCH, DIM)).astype(np.float32)
    started = time.perf_counter()
    for batch, block in zip(hashes, vectors, strict=True):
        cache.put_many("model@digest", dict(zip(batch, block, strict=True)))
    write = (time.perf_counter() - started) / batches
    started = time.perf_counter()
    for batch in hashes:
        assert len(cache.get_many("model@digest", batch)) == BATCH
    lookup = (time.perf_counter() - started) / batches
    cache.close()
    return key_lookup, write, lookup


def rows_sent(settings: Settings) -> tuple[int, int]:
    """Bytes of the rows each scan read asks a PostgreSQL server for: every column, and the
    state's columns only (`pg_column_size` of each row, summed)."""
    states = "doc_id, source, status, size, mtime, etag, sidecar, deleted_by, chunk_count"
    assert settings.state.url is not None
    engine = create_engine(settings.state.url.get_secret_value())
    try:
        with engine.connect() as conn:
            return tuple(
                conn.execute(
                    text(f"SELECT SUM(pg_column_size({row})) FROM documents d WHERE namespace = ''")
                ).scalar_one()
                for row in ("d.*", f"ROW({states})")
            )  # type: ignore[return-value]
    finally:
        engine.dispose()


def measure_manifest(
    backend: str, settings: Settings, documents: int, chunks: int, repeats: int
) -> None:
    """A scan's read of the manifest, every record whole against the states only."""
    manifest = Manifest.open(settings)
    try:
        started = time.perf_counter()
        fill_manifest(manifest, documents, chunks)
        print(
            f"{backend} manifest: {documents:,} documents of {chunks} chunks written in "
            f"{time.perf_counter() - started:.1f} s"
        )
        rows = [
            ("scan read, every record whole (before)", manifest.all),
            ("scan read, states only (now)", manifest.object_states),
        ]
        results = {name: measure(work, repeats) for name, work in rows}
        if backend == "postgresql":  # rchar misses sockets (recv): the rows' size the server sent
            sent = rows_sent(settings)
            results = {
                name: (s, sent[n], peak) for n, (name, (s, _, peak)) in enumerate(results.items())
            }
        print(f"{'':42}{'seconds':>9}{'MB read':>10}{'MB peak':>10}")
        for name, (seconds, read, peak) in results.items():
            print(f"{name:42}{seconds:>9.3f}{read / 2**20:>10.1f}{peak / 2**20:>10.1f}")
        (b_s, b_read, b_peak), (a_s, a_read, a_peak) = results.values()
        print(
            f"before / now: {b_s / a_s:.1f}x the time, {b_read / max(a_read, 1):.1f}x the bytes "
            f"read, {b_peak / a_peak:.1f}x the memory"
        )
    finally:
        manifest.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--postgres", help="also measure the stores on this database (postgresql+psycopg://...)"
    )
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        backends = {"sqlite": Settings(data_dir=data / "sqlite")}
        if args.postgres:
            backends["postgresql"] = Settings(data_dir=data / "pg", state={"url": args.postgres})
        for backend, settings in backends.items():
            measure_manifest(backend, settings, args.documents, args.chunks, args.repeats)
            key_lookup, cache_write, cache_lookup = measure_stores(settings)
            print(
                f"{backend}: key lookup per request {key_lookup * 1e6:.0f} us; embedding cache "
                f"per batch of {BATCH}: write {cache_write * 1e3:.1f} ms, "
                f"lookup {cache_lookup * 1e3:.1f} ms"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
