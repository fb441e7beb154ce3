"""One delete (issue 17): `DELETE /v1/documents/{id}` goes through the document syncer under the
document's Redis lock, and leaves a tombstone that scans respect until the object's content
changes.

Real Redis (the workers' lock), the real engine, model and graph; the worker's task runs eagerly
in this process on the API's own runtime, as `rag up` runs it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from core.embedding import Embedder
from core.locks import Locks
from core.manifest import DeletedBy, DocStatus
from core.types import TenantScope
from ingest.bucket import LocalBucket
from tests.support.api_env import ApiEnv, prepare_runtime, running_app
from workers import context
from workers.app import create_app
from workers.deployment import Deployment
from workers.redis_server import free_port
from workers.tasks.ingestion import sync_document

ACME = TenantScope("acme")
DOC = "tenants/acme/notes.html"


@pytest.fixture
def env(tmp_path: Path, embedder: Embedder) -> Iterator[ApiEnv]:
    runtime, keys = prepare_runtime(tmp_path, embedder)
    with running_app(runtime, keys) as api:
        yield api


def _bucket(env: ApiEnv) -> Path:
    return Path(env.runtime.settings.ingest.bucket_url)


def _scan(env: ApiEnv) -> dict[str, int]:
    """A full scan and sync of the bucket, as `rag ingest` (and every scan's tasks) run it."""
    summary = env.platform.ingestion_of(LocalBucket(_bucket(env))).run()
    return {"added": summary.added, "modified": summary.modified, "unchanged": summary.unchanged}


def _delete(env: ApiEnv, doc_id: str) -> dict:
    reply = env.client.delete(f"/v1/documents/{doc_id}", headers=env.auth("acme", "admin"))
    assert reply.status_code == 200, reply.text
    return reply.json()


def _state(env: ApiEnv, doc_id: str) -> str:
    """`indexed` or `gone`, checked in the manifest, the index and the graph together; a mix of
    the two fails the test."""
    record = env.runtime.manifest.get(doc_id)
    assert record is not None
    chunks = env.runtime.index.chunk_ids(ACME, doc_id)
    facts = env.platform.graph_store.document(ACME, doc_id)
    if record.status == DocStatus.INDEXED:
        assert chunks and chunks == set(record.chunk_ids), (record, chunks)
        assert facts is not None and set(facts) == chunks, (chunks, facts)
        return "indexed"
    assert (record.status, record.deleted_by) == (DocStatus.DELETED, DeletedBy.API), record
    assert not chunks and not record.chunk_ids, chunks
    assert facts is None, facts
    return "gone"


def test_an_api_delete_holds_against_scans_until_the_content_changes(env: ApiEnv) -> None:
    path = _bucket(env) / DOC
    shown = _delete(env, DOC)
    assert (shown["status"], shown["deleted_by"], shown["chunks"]) == ("deleted", "api", 0)
    assert _scan(env)["added"] == 0
    assert _state(env, DOC) == "gone"
    # New stat data, the same bytes: still the document deleted.
    time.sleep(0.01)
    path.touch()
    (_bucket(env) / f"{DOC}.meta.json").write_text('{"project": "zeus"}')  # new metadata too
    assert _scan(env)["added"] == 0
    assert _state(env, DOC) == "gone"
    assert _scan(env)["modified"] == 0
    got = env.client.get(f"/v1/documents/{DOC}", headers=env.auth("acme")).json()
    assert (got["status"], got["deleted_by"]) == ("deleted", "api")
    # New content: indexed again, and no longer shown as deleted.
    path.write_text(path.read_text().replace("coffee", "tea"))
    assert _scan(env)["added"] == 1
    assert _state(env, DOC) == "indexed"
    got = env.client.get(f"/v1/documents/{DOC}", headers=env.auth("acme")).json()
    assert (got["status"], got["deleted_by"]) == ("indexed", None)


def test_an_object_deleted_from_the_bucket_is_deleted_by_the_bucket(env: ApiEnv) -> None:
    (_bucket(env) / DOC).unlink()
    _scan(env)
    got = env.client.get(f"/v1/documents/{DOC}", headers=env.auth("acme")).json()
    assert (got["status"], got["deleted_by"]) == ("deleted", "bucket")


def test_a_delete_waits_for_a_workers_lock_then_answers_409_and_without_redis_503(
    tmp_path: Path, embedder: Embedder
) -> None:
    runtime, keys = prepare_runtime(tmp_path, embedder, api_delete_lock_wait_seconds=0.3)
    with running_app(runtime, keys) as env:
        redis = Redis.from_url(runtime.settings.redis_url)
        locks = Locks(redis, Deployment.of(runtime.settings).id)
        with locks.document(DOC, 60):  # a worker syncs it for longer than a delete waits
            reply = env.client.delete(f"/v1/documents/{DOC}", headers=env.auth("acme", "admin"))
        assert reply.status_code == 409, reply.text
        assert reply.json()["error"]["code"] == "document_busy"
        assert reply.headers["Retry-After"] == "1"
        assert _state(env, DOC) == "indexed"  # nothing was touched
        dead = f"redis://127.0.0.1:{free_port()}/0"
        runtime.settings = runtime.settings.updated(redis_url=dead)
        env.client.app.state.api._redis = None  # the state's client, built again for the URL
        reply = env.client.delete(f"/v1/documents/{DOC}", headers=env.auth("acme", "admin"))
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["code"] == "lock_unavailable"
        assert _state(env, DOC) == "indexed"


def _long_text(round_: int) -> str:
    """A document whose sync takes a while (dozens of chunks to embed), new in every round."""
    return "\n\n".join(
        f"Round {round_}, paragraph {n}: the coffee roaster in aisle {n} grinds beans for the "
        f"French press, and the barista weighs {n + round_} grams before steeping."
        for n in range(60)
    )


class _DeleteMidWrite:
    """A `DocumentListener` that has an admin delete the document at the narrowest point of a
    sync: its new points are in the index, its graph facts and manifest record not yet written.
    It waits a moment for that delete, which under the document's lock cannot finish before
    the sync does."""

    def __init__(self, env: ApiEnv, doc_id: str) -> None:
        self._env, self._doc_id = env, doc_id
        self.deleter: threading.Thread | None = None

    def on_indexed(self, doc: object, point_ids: list[str]) -> None:
        if self.deleter is None:
            self.deleter = threading.Thread(target=_delete, args=(self._env, self._doc_id))
            self.deleter.start()
            self.deleter.join(timeout=1.0)

    def on_deleted(self, scope: TenantScope, doc_id: str) -> None:
        pass


def test_a_concurrent_sync_and_delete_end_in_one_consistent_state(env: ApiEnv) -> None:
    """A worker syncs a changed document while an admin deletes it: whichever takes the lock
    first, the document ends indexed in full or gone in full, never between.

    The delete is sent after delays swept across the sync's duration (before it, during its
    parse and embedding, after it), and once exactly between its index and manifest writes.
    """
    ctx = context.install(env.platform)
    create_app(env.runtime.settings)
    doc, path = "tenants/acme/long.txt", _bucket(env) / "tenants/acme/long.txt"
    try:
        path.write_text(_long_text(0))
        started = time.perf_counter()
        assert sync_document.apply((doc,)).get()["outcome"] == "added"
        sync_seconds = time.perf_counter() - started
        rounds = 6
        seen = set()
        for n in range(1, rounds + 1):
            path.write_text(_long_text(n))
            worker = threading.Thread(target=lambda: sync_document.apply((doc,)).get())
            worker.start()
            time.sleep(sync_seconds * (n - 1) / (rounds - 2))
            _delete(env, doc)
            worker.join()
            seen.add(_state(env, doc))
            # The worker's retry, should the delete have held the lock when it started; and a
            # scan afterwards: neither turns a consistent state into a mixed one.
            sync_document.apply((doc,)).get()
            _state(env, doc)
            _scan(env)
            _state(env, doc)
        assert "gone" in seen  # the delete landed after a sync at least once

        path.write_text(_long_text(rounds + 1))
        mid_write = _DeleteMidWrite(env, doc)
        ctx.ingestion.syncer._listeners.append(mid_write)
        try:
            assert sync_document.apply((doc,)).get()["outcome"] in ("added", "modified")
        finally:
            ctx.ingestion.syncer._listeners.remove(mid_write)
        assert mid_write.deleter is not None
        mid_write.deleter.join()
        assert _state(env, doc) == "gone"  # the delete came second, and whole
    finally:
        context.close()
