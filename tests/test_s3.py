"""The S3 bucket against an S3-compatible server this test starts (`moto_server` on loopback):
listing, stat and reads, event hints through SQS, and the real workers syncing from it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from redis import Redis

from core.embedding import Embedder
from core.manifest import DocStatus
from core.runtime import Runtime
from core.settings import Settings
from ingest.bucket import ObjectTooLargeError, UnsafeKeyError
from ingest.s3 import S3Bucket, aws_client
from ingest.service import open_bucket
from ingest.watch import QueueWatcher, keys_from_s3_event
from tests.support.documents import corrupt_pdf, make_pdf
from tests.support.services import redis_url
from tests.support.workers import (
    WORKER_DB,
    assert_index_matches,
    builder_for,
    deployment,
    document_text,
    expected_points,
    wait_converged,
)
from workers.redis_server import free_port

UNICODE_KEY = "reports 2024/résumé été – ünïcode.txt"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    binary = shutil.which("moto_server") or pytest.skip("moto_server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline and process.poll() is None, "moto did not start"
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)


_bucket_names = iter(f"bucket-{n}" for n in range(1000))


def _settings(tmp: Path, endpoint: str, url: str, **extra: object) -> Settings:
    return Settings(
        data_dir=tmp / "data",
        bucket_url=url,
        s3_endpoint_url=endpoint,
        aws_access_key_id=SecretStr("test"),
        aws_secret_access_key=SecretStr("test"),
        **extra,
    )


@pytest.fixture
def s3(tmp_path: Path, s3_endpoint: str) -> tuple[Settings, str]:
    """Settings for a fresh bucket under the prefix `in/`, and the bucket's name."""
    name = next(_bucket_names)
    settings = _settings(tmp_path, s3_endpoint, f"s3://{name}/in")
    aws_client("s3", settings.ingest).create_bucket(Bucket=name)
    return settings, name


def _put(settings: Settings, name: str, key: str, body: bytes) -> None:
    aws_client("s3", settings.ingest).put_object(Bucket=name, Key=key, Body=body)


def test_listing_stat_and_reads(s3: tuple[Settings, str]) -> None:
    settings, name = s3
    _put(settings, name, "in/" + UNICODE_KEY, "Ünïcode body".encode())
    _put(settings, name, "in/tenants/acme/a.txt", b"A" * 100)
    _put(settings, name, "in/folder/", b"")  # a console-made "folder"
    _put(settings, name, "elsewhere/b.txt", b"outside the prefix")
    bucket = open_bucket(settings.ingest.bucket_url, settings.ingest)
    assert isinstance(bucket, S3Bucket)
    listed = {o.key: o for o in bucket.list()}
    assert sorted(listed) == sorted([UNICODE_KEY, "tenants/acme/a.txt"])
    for key, obj in listed.items():
        assert bucket.stat(key) == obj  # HEAD and LIST agree, so a task's stat matches a scan
    assert bucket.stat("missing.txt") is None
    assert bucket.read(UNICODE_KEY, 1000) == "Ünïcode body".encode()
    with pytest.raises(ObjectTooLargeError, match="100 bytes is over the 99-byte limit"):
        bucket.read("tenants/acme/a.txt", 99)
    with pytest.raises(FileNotFoundError):
        bucket.read("missing.txt", 1000)
    with pytest.raises(UnsafeKeyError):
        bucket.read("../../etc/passwd", 1000)
    assert bucket.uri(UNICODE_KEY).startswith(f"s3://{name}/in/reports%202024/")


def test_event_notifications_hint_changed_keys(s3: tuple[Settings, str]) -> None:
    """S3 sends object-created events to SQS; the watcher turns them into keys under the prefix."""
    settings, name = s3
    sqs = aws_client("sqs", settings.ingest)
    queue_url = sqs.create_queue(QueueName=f"{name}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    aws_client("s3", settings.ingest).put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
            ]
        },
    )
    hinted: list[list[str]] = []
    watcher = QueueWatcher(
        queue_url,
        S3Bucket(settings.ingest.bucket_url, settings.ingest),
        settings.ingest,
        hinted.append,
    )
    watcher.start()
    try:
        _put(settings, name, "in/" + UNICODE_KEY, b"x")
        _put(settings, name, "elsewhere/ignored.txt", b"x")
        deadline = time.monotonic() + 30
        while not hinted and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        watcher.stop()
    assert hinted == [[UNICODE_KEY]]
    wrapped = '{"Message": "{\\"Records\\": [{\\"s3\\": {\\"bucket\\": {\\"name\\": \\"b\\"}, \\"object\\": {\\"key\\": \\"in/a+b%C3%A9.txt\\"}}}]}"}'  # noqa: E501
    assert keys_from_s3_event(wrapped, "b", "in/") == ["a bé.txt"]
    assert keys_from_s3_event("not json", "b", "in/") == []


@pytest.mark.slow
def test_workers_sync_an_s3_bucket(
    tmp_path: Path, s3: tuple[Settings, str], s3_endpoint: str, embedder: Embedder
) -> None:
    """Drop, replace and delete through S3 with a real worker; bad objects are quarantined."""
    settings, name = s3
    redis = Redis.from_url(redis_url(WORKER_DB))
    redis.flushdb()
    keys = [f"doc {n:02d}.txt" for n in range(15)] + [UNICODE_KEY]
    for n, key in enumerate(keys):
        _put(settings, name, "in/" + key, document_text(n).encode())
    _put(settings, name, "in/tenants/acme/deck.pdf", make_pdf(["Acme quokka777."]))
    bad = {
        "../../etc/passwd": "unsafe object key",
        "broken.pdf": "corrupt PDF",
        "empty.md": "empty document",
        "big.txt": "over the 60000-byte limit",
    }
    bodies = {"../../etc/passwd": b"root:x:0:0", "broken.pdf": corrupt_pdf(), "empty.md": b""}
    for key in bad:
        _put(settings, name, "in/" + key, bodies.get(key, b"y" * 60_001))
    dep = deployment(
        tmp_path,
        settings.ingest.bucket_url,
        redis_url(WORKER_DB),
        RAG_S3_ENDPOINT_URL=s3_endpoint,
        RAG_AWS_ACCESS_KEY_ID="test",
        RAG_AWS_SECRET_ACCESS_KEY="test",
    )
    bucket = S3Bucket(settings.ingest.bucket_url, settings.ingest)
    worker = dep.worker("w1")
    try:
        status = wait_converged(dep, time.time() - 1, worker)
        assert status.counts["indexed"] == len(keys) + 1
        assert {r.doc_id: r.error for r in status.failed}.keys() == bad.keys()
        for record in status.failed:
            assert bad[record.doc_id] in record.error, record
        # Replace three (the unicode key among them), delete three, while the worker runs.
        for n in (0, 1):
            _put(settings, name, f"in/{keys[n]}", document_text(n, edit=2).encode())
        _put(settings, name, "in/" + UNICODE_KEY, document_text(99).encode())
        for key in keys[5:8]:
            aws_client("s3", settings.ingest).delete_object(Bucket=name, Key="in/" + key)
        changed = time.time()
        status = wait_converged(dep, changed, worker)
    finally:
        worker.stop()
        redis.flushdb()
    assert status.counts["deleted"] == 3 and status.counts["failed"] == len(bad)
    good = [o for o in bucket.list() if o.key not in bad]
    expected = expected_points(bucket, good, builder_for(embedder, dep.settings))
    assert UNICODE_KEY in expected and len(expected) == len(keys) + 1 - 3
    with Runtime(dep.settings, embedder) as rt:
        assert_index_matches(rt, expected)
        manifest = rt.manifest
        assert manifest.get(UNICODE_KEY).status == DocStatus.INDEXED
        assert manifest.get(UNICODE_KEY).source == bucket.uri(UNICODE_KEY)
