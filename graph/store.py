"""Where tenant graphs live: one file per document on disk, or Redis in distributed mode.

Both stores persist the per-document contributions, never the derived graph: a document's update
writes that document only (cost proportional to it, not to the corpus), and a tenant's graph is
rebuilt in memory on first use by replaying its documents (no re-extraction).

A tenant graph belongs to an index generation (`core.generation`), since it names the chunk point
ids of that generation's chunking: a rebuild fills the new generation's store beside the served
one (`open_graph_store(settings, generation)`), and `ServedGraphStore` switches to it with the
index. A data dir from before generations keeps its graph under data_dir/graph (and `rag:graph`).

Consistency rules:
- File store: one writing process per data dir (as with the embedded shard). Each document is one
  file replaced atomically (temp file, fsync, rename, fsync of the folder), so a crash leaves
  either the old or the new contribution, never a torn one; temp files are ignored on load.
- Redis store: each document's contribution is replaced by one Lua script that also bumps the
  tenant's version and appends (version, doc id) to the tenant's change log, atomically; the
  last writer of a document wins, as it does in the index. A process serves reads from its own
  copy of the graph and, before each read, compares versions (one GET) and replays only the
  documents changed since (or everything, if the log was trimmed past its version).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from core.types import TenantScope
from graph.model import (
    DocFacts,
    GraphDecodeError,
    TenantGraph,
    decode_document,
    encode_document,
)


class GraphStore(ABC):
    """Tenant graphs loaded lazily and kept in memory; writes go to storage first."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._graphs: dict[str, TenantGraph] = {}

    @contextmanager
    def read(self, scope: TenantScope) -> Iterator[TenantGraph]:
        """The tenant's current graph, held still (no writer in this process) while in use."""
        with self._lock:
            yield self._current(scope.tenant_id)

    @abstractmethod
    def put(self, scope: TenantScope, doc_id: str, facts: DocFacts | None) -> None:
        """Set what a document contributes, durably; None removes the document from the graph."""

    @abstractmethod
    def document(self, scope: TenantScope, doc_id: str) -> DocFacts | None:
        """What a document contributes now, as stored (None if nothing)."""

    @abstractmethod
    def _current(self, tenant_id: str) -> TenantGraph:
        """The tenant's graph, loaded or brought up to date; called under the lock."""

    def close(self) -> None:
        """Drop the graphs held in memory (they reload on next use)."""
        with self._lock:
            self._graphs.clear()

    @abstractmethod
    def drop(self) -> None:
        """Delete everything stored, once the generation it belongs to is retired."""


class ServedGraphStore(GraphStore):
    """The served generation's store, as the graph leg, the API and ingestion hold it.

    `switch` makes another generation's store the served one at once; the old one is closed and
    dropped by `retire`, which the index's switch calls after its grace period. In Redis mode
    another process (an API replica) keeps its generation's store until it is restarted.
    """

    def __init__(self, store: GraphStore) -> None:
        super().__init__()
        self._store = store

    @property
    def current(self) -> GraphStore:
        return self._store

    @contextmanager
    def read(self, scope: TenantScope) -> Iterator[TenantGraph]:
        with self._store.read(scope) as graph:
            yield graph

    def put(self, scope: TenantScope, doc_id: str, facts: DocFacts | None) -> None:
        self._store.put(scope, doc_id, facts)

    def document(self, scope: TenantScope, doc_id: str) -> DocFacts | None:
        return self._store.document(scope, doc_id)

    def _current(self, tenant_id: str) -> TenantGraph:
        return self._store._current(tenant_id)

    def switch(self, store: GraphStore) -> None:
        """Serve `store`; the one it replaces is for `retire`, once no search holds it."""
        self._store = store

    @staticmethod
    def retire(old: GraphStore) -> None:
        old.close()
        old.drop()

    def drop(self) -> None:
        self._store.drop()

    def close(self) -> None:
        self._store.close()


class FileGraphStore(GraphStore):
    """`root/<tenant>/<sha256(doc_id)>.json`, one file per document."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def document(self, scope: TenantScope, doc_id: str) -> DocFacts | None:
        with self._lock:
            return self._current(scope.tenant_id).docs.get(doc_id)

    def put(self, scope: TenantScope, doc_id: str, facts: DocFacts | None) -> None:
        with self._lock:
            self._persist(scope.tenant_id, doc_id, facts)
            self._current(scope.tenant_id).set_document(doc_id, facts)

    def _current(self, tenant_id: str) -> TenantGraph:
        graph = self._graphs.get(tenant_id)
        if graph is None:
            folder = self.root / tenant_id
            # Only complete files end in .json; a crashed write leaves a dot-named .tmp file.
            paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
            graph = self._graphs[tenant_id] = TenantGraph.from_documents(map(_read, paths))
        return graph

    def _persist(self, tenant_id: str, doc_id: str, facts: DocFacts | None) -> None:
        folder = self.root / tenant_id
        path = folder / f"{hashlib.sha256(doc_id.encode()).hexdigest()}.json"
        if facts is None:
            path.unlink(missing_ok=True)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{path.name}.{uuid.uuid4().hex}.tmp"
            with tmp.open("wb") as f:
                f.write(encode_document(doc_id, facts))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        if folder.is_dir():
            _fsync_dir(folder)

    def drop(self) -> None:
        with self._lock:
            self._graphs.clear()
            shutil.rmtree(self.root, ignore_errors=True)


def _read(path: Path) -> tuple[str, DocFacts]:
    try:
        return decode_document(path.read_bytes())
    except GraphDecodeError as exc:
        raise GraphDecodeError(f"{path}: {exc}") from exc


def _fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in the folder durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# KEYS: docs hash, version counter, change log (sorted set); ARGV: doc id, payload ('' deletes),
# how many log entries to keep.
_PUT_SCRIPT = """
local version = redis.call('INCR', KEYS[2])
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('ZADD', KEYS[3], version, version .. ':' .. ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -(tonumber(ARGV[3]) + 1))
return version
"""


class RedisGraphStore(GraphStore):
    """Contributions in Redis, shared by every worker and API replica; see the module docstring."""

    def __init__(self, client: redis.Redis, prefix: str = "rag:graph", log_keep: int = 10_000):
        super().__init__()
        self._redis = client
        self._prefix = prefix
        self._log_keep = log_keep
        self._script = client.register_script(_PUT_SCRIPT)

    def _keys(self, tenant_id: str) -> tuple[str, str, str]:
        base = f"{self._prefix}:{tenant_id}"
        return f"{base}:docs", f"{base}:version", f"{base}:log"

    def document(self, scope: TenantScope, doc_id: str) -> DocFacts | None:
        data = self._redis.hget(self._keys(scope.tenant_id)[0], doc_id)
        return None if data is None else decode_document(data)[1]

    def put(self, scope: TenantScope, doc_id: str, facts: DocFacts | None) -> None:
        payload = b"" if facts is None else encode_document(doc_id, facts)
        self._script(keys=self._keys(scope.tenant_id), args=[doc_id, payload, self._log_keep])
        with self._lock:
            # Catch up through the log rather than applying `facts`: a later writer of the same
            # document may already have replaced it, and its version is the one that stands.
            self._current(scope.tenant_id)

    def _current(self, tenant_id: str) -> TenantGraph:
        docs_key, version_key, log_key = self._keys(tenant_id)
        graph = self._graphs.get(tenant_id)
        version = int(self._redis.get(version_key) or 0)
        if graph is not None and graph.version == version:
            return graph
        if graph is not None:
            changes = self._redis.zrangebyscore(
                log_key, f"({graph.version}", "+inf", withscores=True
            )
            if changes and int(changes[0][1]) == graph.version + 1:  # no gap: replay the changes
                doc_ids = list(dict.fromkeys(m.decode().split(":", 1)[1] for m, _ in changes))
                for doc_id, data in zip(doc_ids, self._redis.hmget(docs_key, doc_ids), strict=True):
                    graph.set_document(doc_id, None if data is None else decode_document(data)[1])
                # Values read may be newer than the log read; replaying them again is a no-op.
                graph.version = int(changes[-1][1])
                return graph
        return self._load(tenant_id)

    def _load(self, tenant_id: str) -> TenantGraph:
        docs_key, version_key, _ = self._keys(tenant_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(version_key)
        pipe.hgetall(docs_key)
        version, docs = pipe.execute()
        graph = TenantGraph.from_documents(map(decode_document, docs.values()))
        self._graphs[tenant_id] = graph
        graph.version = int(version or 0)
        return graph

    def drop(self) -> None:
        with self._lock:
            self._graphs.clear()
            keys = list(self._redis.scan_iter(match=f"{self._prefix}:*", count=1000))
            for start in range(0, len(keys), 1000):
                self._redis.delete(*keys[start : start + 1000])

    def close(self) -> None:
        super().close()
        self._redis.close()
