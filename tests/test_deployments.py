"""Two deployments on one Redis database (issue 24, finding 3): real worker processes, the real
model and shards, one private redis-server.

Deployment A runs as `rag worker --beat`, deployment B as `rag up`; both consume the same queues
of the same database, so each receives tasks the other sent. Each must index its own bucket and
nothing of the other's, hand the tasks it did not send to their owner's own queue unrun (logged
once per sender), and `rag up` must warn at start-up that another deployment beats on its
database.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

import pytest
from redis import Redis

from core.embedding import Embedder
from core.locks import Locks
from core.runtime import Runtime
from core.settings import Settings
from ingest.bucket import LocalBucket
from tests.support.workers import (
    Deployment,
    OwnRedis,
    assert_index_matches,
    builder_for,
    converged,
    deployment,
    document_text,
    expected_points,
    send_as,
    wait_converged,
)
from workers import deployment as deployments
from workers.redis_server import free_port

pytestmark = pytest.mark.slow
REFUSED = re.compile(r"refused rag\.[a-z_.]+ sent by (.*?): this worker serves .*")


def _bucket(root: Path, prefix: str, count: int) -> Path:
    root.mkdir(parents=True)
    for n in range(count):
        (root / f"{prefix}-{n}.txt").write_text(document_text(n))
    return root


def _refusals(log: Path) -> list[re.Match]:
    return list(REFUSED.finditer(log.read_text(errors="replace")))


def _identity(dep: Deployment) -> str:
    return deployments.Deployment.of(dep.settings).id


def _wait(check, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}\n{log.read_text(errors='replace')[-4000:]}")
        time.sleep(0.5)


def _only_its_own(dep: Deployment, bucket: Path, embedder: Embedder) -> None:
    """Its manifest knows exactly its bucket's documents, and its index holds exactly their
    chunks: a task of the other's run here would have synced (or deleted) a foreign key."""
    manifest = dep.manifest()
    try:
        assert sorted(manifest.all()) == sorted(o.key for o in LocalBucket(bucket).list())
    finally:
        manifest.close()
    local = LocalBucket(bucket)
    expected = expected_points(local, list(local.list()), builder_for(embedder, dep.settings))
    with Runtime(dep.settings, embedder) as rt:
        assert_index_matches(rt, expected)


def test_two_deployments_on_one_redis_database_run_only_their_own_tasks(
    tmp_path: Path, embedder: Embedder, own_redis: OwnRedis
) -> None:
    url = own_redis.url.removesuffix("/0") + "/3"  # one database, shared on purpose
    own_redis_db = Redis.from_url(url)
    bucket_a = _bucket(tmp_path / "bucket-a", "alpha", 3)
    bucket_b = _bucket(tmp_path / "bucket-b", "beta", 3)
    a = deployment(tmp_path / "a", str(bucket_a), url)
    b = deployment(tmp_path / "b", str(bucket_b), url, RAG_API_PORT=str(free_port()))
    assert _identity(a) != _identity(b)
    documents = a.settings.workers.celery_documents_queue
    scans = a.settings.workers.celery_scan_queue
    started = time.time()
    worker_a = a.worker("a")
    up_b = None
    try:
        wait_converged(a, started, worker_a)

        # B's tasks, and one from a client that names no deployment, while only A consumes.
        beta = sorted(o.key for o in LocalBucket(bucket_b).list())
        foreign = [
            send_as(b.settings, url, "rag.sync_document", (beta[0],), documents),
            send_as(
                b.settings,
                url,
                "rag.sync_documents",
                (beta, [uuid.uuid4().hex for _ in beta]),
                documents,
            ),
            send_as(b.settings, url, "rag.scan_bucket", (), scans),
            send_as(None, url, "rag.scan_bucket", (), scans),
        ]
        log_a = worker_a.log

        def all_ignored() -> bool:
            text = log_a.read_text(errors="replace")
            return all(f"[{task_id}] ignored" in text for task_id in foreign)

        _wait(all_ignored, 120, "A did not refuse every foreign task", log_a)
        refusals = [m.group(0) for m in _refusals(log_a)]
        assert len(refusals) == 2, refusals  # one line per sender, not per task
        b_queue = deployments.Deployment.of(b.settings).queue
        assert any(_identity(b) in line and b_queue in line for line in refusals), refusals
        assert any("sent by no deployment" in line for line in refusals), refusals
        assert own_redis_db.llen(b_queue) == 3  # B's, kept for B while it is away

        # B starts as `rag up` beside A: it warns of A's heartbeat, and both converge, each on
        # its own bucket, while each receives some of the other's tasks and hands them on.
        since = time.time()
        log_path = tmp_path / "up-b.log"
        with log_path.open("ab") as log:
            up_b = b.start_up(log)
        manifest_b = b.manifest()
        try:

            def b_converged_and_ran_its_tasks() -> bool:
                """Its own scan may settle its bucket before it takes the tasks A handed on, and
                one that waits on its document's lock (B's own sync of it runs) is retried."""
                text = log_path.read_text(errors="replace")
                assert up_b.poll() is None, text[-4000:]
                ran = all(f"[{task_id}] succeeded" in text for task_id in foreign[:3])
                return ran and converged(manifest_b, since)

            _wait(b_converged_and_ran_its_tasks, 240, "B did not converge", log_path)
        finally:
            manifest_b.close()
        wait_converged(a, since, worker_a)
        text_b = log_path.read_text(errors="replace")  # B ran its own tasks that A had received
        assert own_redis_db.llen(b_queue) == 0
        warning = re.search(r"another deployment uses this Redis database \(.*?\): (.*)", text_b)
        assert warning is not None, text_b[-4000:]
        assert _identity(a) in warning.group(1) and str(bucket_a) in warning.group(1)
        for path in (log_a, log_path):
            senders = [m.group(1) for m in _refusals(path)]
            assert len(senders) == len(set(senders)), senders  # each sender logged once
    finally:
        if up_b is not None:
            up_b.terminate()
            up_b.wait(timeout=90)
        worker_a.stop()
        own_redis_db.close()

    _only_its_own(a, bucket_a, embedder)
    _only_its_own(b, bucket_b, embedder)


def _outcomes(log: Path, task_id: str) -> list[str]:
    """What Celery logged of each run of the task `task_id`, in order."""
    pattern = rf"\[{task_id}\] (succeeded|retry|ignored|reject|raised)"
    return re.findall(pattern, log.read_text(errors="replace"))


def test_rag_up_runs_its_own_tasks_as_its_app_retries_included(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    """`rag up`'s pool threads ran the tasks of Celery's fallback app, as a bare WorkController
    does (found on 2026-12-07): every retry went to that app's broker, amqp://localhost, and was
    lost, and another deployment's task ran here unrefused. Now a task on its own queue (where
    another deployment's worker hands it on), retried while its document's lock is held, runs
    again once the lock is free; another deployment's task is handed on to that one's queue."""
    bucket = _bucket(tmp_path / "bucket-b", "beta", 1)
    # Retried as long as the lock is held: the test frees it at its own pace.
    b = deployment(
        tmp_path / "b",
        str(bucket),
        own_redis.url,
        RAG_API_PORT=str(free_port()),
        RAG_MAX_ATTEMPTS="1000",
    )
    other = deployment(
        tmp_path / "a", str(_bucket(tmp_path / "bucket-a", "alpha", 1)), own_redis.url
    )
    redis = Redis.from_url(own_redis.url)
    log_path = tmp_path / "up-b.log"
    since = time.time()
    with log_path.open("ab") as log:
        up_b = b.start_up(log)
    manifest = b.manifest()
    try:

        def alive() -> bool:
            assert up_b.poll() is None, log_path.read_text(errors="replace")[-4000:]
            return True

        _wait(lambda: alive() and converged(manifest, since), 240, "B did not converge", log_path)

        documents = b.settings.workers.celery_documents_queue
        foreign = send_as(
            other.settings, own_redis.url, "rag.sync_document", ("alpha-0.txt",), documents
        )
        _wait(
            lambda: alive() and _outcomes(log_path, foreign),
            120,
            "B did not take A's task",
            log_path,
        )
        assert _outcomes(log_path, foreign) == ["ignored"]
        assert redis.llen(deployments.Deployment.of(other.settings).queue) == 1

        lock = Locks(redis, _identity(b)).document("beta-0.txt", 60)
        assert lock.acquire()
        try:
            own = deployments.Deployment.of(b.settings).queue
            task_id = send_as(b.settings, own_redis.url, "rag.sync_document", ("beta-0.txt",), own)
            _wait(
                lambda: alive() and _outcomes(log_path, task_id),
                120,
                "B did not take its task",
                log_path,
            )
        finally:
            lock.release()
        assert _outcomes(log_path, task_id)[0] == "retry"
        _wait(
            lambda: alive() and "succeeded" in _outcomes(log_path, task_id),
            120,
            "its retry was lost",
            log_path,
        )
        *retries, last = _outcomes(log_path, task_id)
        assert retries and set(retries) == {"retry"} and last == "succeeded"
    finally:
        manifest.close()
        up_b.terminate()
        up_b.wait(timeout=90)
        redis.close()


def test_hosts_sharing_a_state_database_are_one_deployment(tmp_path: Path) -> None:
    """With the state in one database, each host keeps a data dir of its own, so the data dir
    no longer tells deployments apart: the bucket and the state database do. Were it still the
    data dir, each host's workers would hand the others' tasks away and never share a lock."""
    shared = "postgresql+psycopg://rag:secret@db:5432/rag"
    host_a = Settings(data_dir=tmp_path / "a", bucket_url="s3://docs/", state={"url": shared})
    host_b = host_a.updated(data_dir=tmp_path / "b")
    other_database = host_a.updated(state={"url": "postgresql+psycopg://rag:secret@db:5432/x"})
    other_password = host_a.updated(state={"url": shared.replace("secret", "rotated")})
    ids = [deployments.Deployment.of(s).id for s in (host_a, host_b, other_database)]
    assert ids[0] == ids[1] != ids[2]
    assert deployments.Deployment.of(other_password).id == ids[0]  # a rotated password


def test_a_deployment_is_its_bucket_and_data_dir_or_its_name(tmp_path: Path) -> None:
    """Every process of one deployment agrees on its identity wherever it was started; another
    bucket or data dir is another deployment; a name replaces the derived identity."""
    here = Settings(data_dir=tmp_path / "data", bucket_url=str(tmp_path / "bucket"))
    same = Settings(data_dir=tmp_path / "x/../data", bucket_url=f"file://{tmp_path}/bucket")
    other_bucket = here.updated(bucket_url=str(tmp_path / "other"))
    other_data = here.updated(data_dir=tmp_path / "other")
    ids = [deployments.Deployment.of(s).id for s in (here, same, other_bucket, other_data)]
    assert ids[0] == ids[1] and len(set(ids)) == 3
    named = here.updated(workers={"deployment": "docs-prod"})
    assert deployments.Deployment.of(named).id == "docs-prod"
    with pytest.raises(ValueError, match="deployment"):
        here.updated(workers={"deployment": "a:b"})  # would break the lock namespace
