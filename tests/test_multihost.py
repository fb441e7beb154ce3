"""One platform across hosts that share no folder: three simulated hosts, each a Linux network
namespace with its own data dir, run `rag worker`, beat and `rag serve` against one PostgreSQL
(the state), one Redis (Celery and the graph), one S3 bucket (`moto_server`) and one index, all
reached over the network at the namespaces' gateway.

The index is a stand-in for a Qdrant server: qdrant-client's local mode served over Qdrant's REST
API by one process (tests/support/qdrant_standin.py), because no Qdrant server is installable
here; the hosts reach it through `QdrantClient(url=...)`, production code unchanged. Local mode
scores BM25 with the plain word tokenizer only, so the hosts turn the stemmer and stopwords off.

Host a runs a worker and an API, host b a worker and an API, host c beat (exactly one per
deployment). The test process is the operator: it writes the bucket, runs `rag` commands on a
host, and reads the state database and the index to check what the hosts did.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from sqlalchemy import create_engine, text

from core.embedding import Embedder
from core.generation import REBUILD_META
from core.manifest import DocStatus, Manifest
from core.runtime import Runtime
from core.settings import Settings
from ingest.bucket import sha256
from ingest.s3 import aws_client
from ingest.service import open_bucket
from tests.support.netns import Host, HostProcess, Network, netns_unavailable
from tests.support.services import BoundServices, services_on
from tests.support.workers import (
    assert_index_matches,
    builder_for,
    converged,
    send_as,
)
from workers.redis_server import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(netns_unavailable() is not None, reason=str(netns_unavailable())),
]

REPO = Path(__file__).resolve().parents[1]
RAG = str(Path(sys.executable).parent / "rag")
BUCKET = "documents"
TENANTS = ("acme", "globex", "initech", "umbrella", "hooli")
DOCUMENTS = 500
ADMIN_KEY = "operator-key-for-the-multihost-test"
_SYNCED = re.compile(r"Task rag\.sync_documents?\[[^\]]+\] succeeded")
# The configuration change: chunks of 64 tokens overlapping by 8 (a document makes about three)
REBUILT = {"chunk_size": 64, "chunk_overlap": 8}
API_PORT = 8000
WORDS = ["river", "granite", "protein", "lattice", "harbor", "ember", "signal", "meadow", "cobalt"]


def document_key(n: int) -> str:
    return f"tenants/{TENANTS[n % len(TENANTS)]}/notes/doc-{n:03d}.txt"


def document_text(n: int, version: int = 0) -> str:
    """Two short paragraphs, unique to the document and its version (one or two chunks)."""
    rng = random.Random(n * 1000 + version)
    paragraphs = [
        f"Note {n} version {version} names wombat{n}v{version}. "
        + " ".join(rng.choice(WORDS) for _ in range(60))
        for _ in range(2)
    ]
    return "\n\n".join(paragraphs)


@dataclass
class Cluster:
    """The shared services at the gateway, the hosts, and the environment each host's `rag`
    processes see (its own data dir, ONNX exports and cache folder; everything else over the
    network)."""

    tmp: Path
    network: Network
    services: BoundServices
    state_url: str
    redis_url: str
    s3_endpoint: str
    qdrant_url: str
    hosts: dict[str, Host] = field(default_factory=dict)
    workers: dict[str, HostProcess] = field(default_factory=dict)
    apis: dict[str, HostProcess] = field(default_factory=dict)

    def shared_env(self) -> dict[str, str]:
        return {
            "RAG_INDEX_MODE": "server",
            "RAG_QDRANT_URL": self.qdrant_url,
            "RAG_REDIS_URL": self.redis_url,
            "RAG_GRAPH_STORE": "redis",
            "RAG_STATE_URL": self.state_url,
            "RAG_BUCKET_URL": f"s3://{BUCKET}/",
            "RAG_S3_ENDPOINT_URL": self.s3_endpoint,
            "RAG_AWS_ACCESS_KEY_ID": "test",
            "RAG_AWS_SECRET_ACCESS_KEY": "test",
            "RAG_ADMIN_API_KEY": ADMIN_KEY,
            "RAG_BM25_STEMMER": "",
            "RAG_BM25_STOPWORDS": "",
            "RAG_BM25_ASCII_FOLDING": "false",
            "RAG_SCAN_INTERVAL_SECONDS": "2",
            "RAG_REQUEUE_AFTER_SECONDS": "10",
            "RAG_DOCUMENT_LOCK_TTL_SECONDS": "5",
            "RAG_RETRY_BACKOFF_SECONDS": "0.5",
            "RAG_WORKERS_SHUTDOWN_TIMEOUT_SECONDS": "5",
        }

    def env(self, host: Host, **extra: str) -> dict[str, str]:
        """What a process on `host` sees: no RAG_ variable of the test process, the host's own
        folders, the shared services."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
        folder = self.tmp / host.name
        return {
            **inherited,
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "XDG_CACHE_HOME": str(folder / "cache"),
            "RAG_ONNX_EXPORT_DIR": str(folder / "onnx"),
            "RAG_DATA_DIR": str(folder / "data"),
            **self.shared_env(),
            **extra,
        }

    def settings(self, **overrides: Any) -> Settings:
        """The operator's (this process's) settings: a data dir of its own, the shared rest."""
        fields = {k.removeprefix("RAG_").lower(): v for k, v in self.shared_env().items()}
        return Settings(**{**fields, "data_dir": self.tmp / "operator" / "data", **overrides})

    def start_worker(self, name: str, **extra: str) -> HostProcess:
        host = self.hosts[name]
        argv = [RAG, "worker", "--concurrency", "2"]
        worker = host.start(argv, self.env(host, **extra), self.tmp / name / "worker.log")
        self.workers[name] = worker
        return worker

    def start_beat(self, name: str) -> HostProcess:
        host = self.hosts[name]
        schedule = self.tmp / name / "data" / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "celery", "-A", "workers.main", "beat",
                "--schedule", str(schedule), "--loglevel=INFO"]  # fmt: skip
        return host.start(argv, self.env(host), self.tmp / name / "beat.log")

    def start_api(self, name: str) -> str:
        """`rag serve` on the host, at its address; its base URL once it answers."""
        host = self.hosts[name]
        argv = [RAG, "serve", "--host", host.address, "--port", str(API_PORT)]
        api = host.start(argv, self.env(host), self.tmp / name / "api.log")
        self.apis[name] = api
        url = f"http://{host.address}:{API_PORT}"
        wait_for(lambda: _answers(f"{url}/healthz"), 180, api, f"the API on host {name}")
        return url

    def rag(self, name: str, *args: str) -> str:
        """A `rag` command run on the host to its end; its standard output."""
        host = self.hosts[name]
        done = host.run([RAG, *args], self.env(host))
        assert done.returncode == 0, f"rag {' '.join(args)} on {name}: {done.stderr[-3000:]}"
        return done.stdout

    def logs(self) -> str:
        """The tail of every host's process logs, for a failure's message."""
        tails = [
            f"--- {log.relative_to(self.tmp)}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.tmp.glob("*/*.log"))
        ]
        return "\n".join(tails)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.TransportError:
        return False


def wait_for(
    condition: Callable[[], bool], timeout: float, process: HostProcess | None, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and not process.alive:
            pytest.fail(f"{what}: the process exited\n{process.log_tail()}")
        if time.monotonic() > deadline:
            tail = process.log_tail() if process is not None else ""
            pytest.fail(f"{what}: not within {timeout:.0f} s\n{tail}")
        time.sleep(0.5)


def _start_server(argv: list[str], url: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 60
    while not _answers(url):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    return process


def _warm_onnx_export(embedder: Embedder) -> Path:
    """The suite's ONNX export folder, holding the model's export once this returns."""
    embedder.embed_documents(["warm the export"])
    return Path(os.environ["RAG_ONNX_EXPORT_DIR"])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("multihost")
    exports = _warm_onnx_export(embedder)
    network = Network()
    servers: list[subprocess.Popen] = []
    try:
        with services_on(network.gateway) as services:
            try:
                yield _start_cluster(tmp, network, services, servers, exports)
            finally:
                network.close()  # the hosts' processes stop before the services they use
    finally:
        network.close()
        for server in servers:
            server.terminate()
            server.wait(timeout=20)


def _start_cluster(
    tmp: Path,
    network: Network,
    services: BoundServices,
    servers: list[subprocess.Popen],
    exports: Path,
) -> Cluster:
    """S3 and the index stand-in at the gateway (added to `servers`), and hosts a, b and c."""
    moto = shutil.which("moto_server") or pytest.skip("moto_server is not installed")
    gateway, s3_port, qdrant_port = network.gateway, str(free_port()), str(free_port())
    s3_endpoint = f"http://{gateway}:{s3_port}"
    servers.append(
        _start_server([moto, "-H", gateway, "-p", s3_port], s3_endpoint, tmp / "moto.log")
    )
    qdrant_url = f"http://{gateway}:{qdrant_port}"
    standin = [sys.executable, "-W", "ignore::UserWarning", "-m",
               "tests.support.qdrant_standin", gateway, qdrant_port]  # fmt: skip
    servers.append(_start_server(standin, qdrant_url, tmp / "qdrant.log"))
    cluster = Cluster(
        tmp,
        network,
        services,
        state_url=services.postgres_url("multihost"),
        redis_url=services.redis_url(0),
        s3_endpoint=s3_endpoint,
        qdrant_url=qdrant_url,
    )
    for name in ("a", "b", "c"):
        cluster.hosts[name] = network.add_host(name)
        # Each host its own copy of the model's export, as an image would carry it.
        shutil.copytree(exports, tmp / name / "onnx", copy_function=os.link)
    return cluster


def state_sql(cluster: Cluster, query: str) -> Any:
    engine = create_engine(cluster.state_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(query)).scalar()
    finally:
        engine.dispose()


def wait_converged(cluster: Cluster, since: float, timeout: float = 420) -> None:
    """Until a full scan started after `since` found the index matching the bucket, and nothing
    is queued or processing; a worker that died fails the wait."""
    manifest = Manifest.open(cluster.settings())
    deadline = time.monotonic() + timeout
    try:
        while not converged(manifest, since):
            dead = [n for n, w in cluster.workers.items() if w.process and not w.alive]
            if dead or time.monotonic() > deadline:
                pytest.fail(f"not converged (dead workers: {dead})\n{cluster.logs()}")
            time.sleep(1)
    finally:
        manifest.close()


@dataclass
class Corpus:
    """What the bucket holds, and what the index and cache should hold of it."""

    expected: dict[str, tuple[set[str], str]]  # {doc id: (point ids, content hash)}
    hashes: dict[str, set[str]]  # {doc id: its chunks' hashes}

    @property
    def chunk_hashes(self) -> set[str]:
        """The distinct chunk texts of the documents the index should hold."""
        return set().union(*(self.hashes[doc_id] for doc_id in self.expected))


def corpus_of(cluster: Cluster, embedder: Embedder, **overrides: Any) -> Corpus:
    """The bucket's documents as the workers should have built them, with these settings."""
    settings = cluster.settings(**overrides)
    bucket = open_bucket(settings.ingest.bucket_url, settings.ingest)
    builder = builder_for(embedder, settings)
    corpus = Corpus({}, {})
    for obj in bucket.list():
        data = bucket.read(obj.key, 10**9)
        doc = builder.build(obj, bucket.uri(obj.key), data, sha256(data), None)
        corpus.expected[obj.key] = ({doc.point_id(c) for c in doc.chunks}, sha256(data))
        corpus.hashes[obj.key] = {c.hash for c in doc.chunks}
    return corpus


def without_tombstones(cluster: Cluster, corpus: Corpus) -> Corpus:
    """The corpus less the objects an API delete keeps out of the index (the delete test's)."""
    manifest = Manifest.open(cluster.settings())
    try:
        for doc_id, record in manifest.all().items():
            if record.tombstone:
                del corpus.expected[doc_id]
    finally:
        manifest.close()
    return corpus


def assert_index_is_bucket(cluster: Cluster, embedder: Embedder, corpus: Corpus) -> None:
    runtime = Runtime(cluster.settings(), embedder)
    try:
        assert_index_matches(runtime, corpus.expected)
    finally:
        runtime.close()


def put_all(cluster: Cluster, bodies: dict[str, str]) -> None:
    """Write the objects through one S3 client (a client costs more than a small object)."""
    s3 = aws_client("s3", cluster.settings().ingest)
    for key, body in bodies.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


@pytest.fixture(scope="module")
def ingested(cluster: Cluster, embedder: Embedder) -> Corpus:
    """The bucket of 500 documents in five tenants, ingested by the workers of hosts a and b
    (beat on host c), converged."""
    aws_client("s3", cluster.settings().ingest).create_bucket(Bucket=BUCKET)
    put_all(cluster, {document_key(n): document_text(n) for n in range(DOCUMENTS)})
    started = time.time()
    cluster.start_beat("c")
    cluster.start_worker("a")
    cluster.start_worker("b")
    wait_converged(cluster, started)
    return corpus_of(cluster, embedder)


def test_workers_on_two_hosts_converge_on_one_bucket(
    cluster: Cluster, ingested: Corpus, embedder: Embedder
) -> None:
    """Exactly one point per chunk, one cache row per distinct chunk text, each text embedded
    once by whichever host took it, both hosts' workers at work, nothing queued or processing;
    then a re-sync against an emptied manifest embeds nothing."""
    assert_index_is_bucket(cluster, embedder, ingested)
    manifest = Manifest.open(cluster.settings())
    try:
        records = manifest.all()
        assert len(records) == DOCUMENTS
        assert {r.status for r in records.values()} == {DocStatus.INDEXED}
        assert not manifest.pending()
        assert set(manifest.tenants()) == set(TENANTS)
    finally:
        manifest.close()
    cached = state_sql(cluster, "SELECT count(DISTINCT chunk_hash) FROM embeddings")
    rows = state_sql(cluster, "SELECT count(*) FROM embeddings")
    assert rows == cached == len(ingested.chunk_hashes)
    embedded = state_sql(cluster, "SELECT coalesce(sum(chunks_embedded), 0) FROM runs")
    assert embedded == len(ingested.chunk_hashes)  # no text embedded on two hosts
    for name in ("a", "b"):  # both hosts synced documents
        log = cluster.workers[name].log_tail(10**8)
        assert _SYNCED.search(log), f"host {name} synced nothing"

    last_run = state_sql(cluster, "SELECT max(id) FROM runs")
    state_sql_write(cluster, "DELETE FROM documents WHERE namespace = ''")
    emptied = time.time()
    wait_converged(cluster, emptied)
    assert_index_is_bucket(cluster, embedder, ingested)
    resynced = state_sql(cluster, f"SELECT coalesce(sum(added), 0) FROM runs WHERE id > {last_run}")
    embedded = state_sql(
        cluster, f"SELECT coalesce(sum(chunks_embedded), 0) FROM runs WHERE id > {last_run}"
    )
    assert resynced == DOCUMENTS and embedded == 0


def state_sql_set(cluster: Cluster, query: str) -> set[Any]:
    engine = create_engine(cluster.state_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(text(query)).scalars())
    finally:
        engine.dispose()


def state_sql_write(cluster: Cluster, statement: str) -> None:
    engine = create_engine(cluster.state_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _search(url: str, key: str, query: str) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/search",
        json={"query": query, "top_k": 5, "mode": "bm25"},  # its one document first
        headers={"X-API-Key": key},
        timeout=60,
    )


def test_a_key_minted_on_one_host_works_on_another_until_revoked_there(
    cluster: Cluster, ingested: Corpus
) -> None:
    api_b = cluster.start_api("b")
    made = cluster.rag("a", "keys", "create", "acme", "--json")
    key = json.loads(made)
    found = _search(api_b, key["key"], "wombat5v0")
    assert found.status_code == 200, found.text
    assert found.json()["results"][0]["doc_id"] == document_key(5)
    cluster.rag("a", "keys", "revoke", key["key_id"])
    refused = _search(api_b, key["key"], "wombat5v0")
    assert refused.status_code == 401, refused.text


def test_an_api_delete_on_one_host_holds_through_another_hosts_scans(
    cluster: Cluster, ingested: Corpus, embedder: Embedder
) -> None:
    """Host a's API deletes a document whose object stays in the bucket; with only host b's
    worker running, its scans leave it deleted."""
    api_a = cluster.start_api("a") if "a" not in cluster.apis else _api_url(cluster, "a")
    admin = json.loads(cluster.rag("a", "keys", "create", "globex", "--role", "admin", "--json"))
    doc_id = document_key(6)  # globex's
    deleted = httpx.delete(
        f"{api_a}/v1/documents/{quote(doc_id, safe='')}",
        headers={"X-API-Key": admin["key"]},
        timeout=60,
    )
    assert deleted.status_code == 200, deleted.text
    cluster.workers["a"].stop()
    del cluster.workers["a"]
    since = time.time()
    wait_converged(cluster, since)
    wait_converged(cluster, time.time())  # a second scan, all by host b's worker
    manifest = Manifest.open(cluster.settings())
    try:
        record = manifest.get(doc_id)
        assert record is not None and record.status == DocStatus.DELETED
        assert record.deleted_by == "api"
    finally:
        manifest.close()
    runtime = Runtime(cluster.settings(), embedder)
    try:
        assert doc_id not in runtime.index.document_ids()
    finally:
        runtime.close()
    cluster.start_worker("a")


def _api_url(cluster: Cluster, name: str) -> str:
    return f"http://{cluster.hosts[name].address}:{API_PORT}"


def _sync_tasks_received(worker: HostProcess) -> int:
    return worker.log_tail(10**8).count("rag.sync_document")


def test_kill_9_of_a_worker_during_a_burst_of_edits_loses_nothing(
    cluster: Cluster, ingested: Corpus, embedder: Embedder
) -> None:
    """300 documents rewritten at once; host b's worker is killed with SIGKILL once it has taken
    some of them; host a's finishes: the index equals the bucket, nothing is stuck queued or
    processing, no document was tried more than RAG_MAX_ATTEMPTS times or given up on."""
    for name in ("a", "b"):
        if name not in cluster.workers or not cluster.workers[name].alive:
            cluster.start_worker(name)
    victim = cluster.workers["b"]
    taken_before = _sync_tasks_received(victim)
    put_all(cluster, {document_key(n): document_text(n, version=1) for n in range(100, 400)})
    wait_for(lambda: _sync_tasks_received(victim) > taken_before, 300, victim, "host b's work")
    victim.kill()
    del cluster.workers["b"]
    killed = time.time()
    settings = cluster.settings()
    most_attempts = 0
    manifest = Manifest.open(settings)
    try:
        deadline = time.monotonic() + 420
        while not converged(manifest, killed):
            attempts = [w.attempts for w in manifest.pending().values()]
            most_attempts = max([most_attempts, *attempts])
            if time.monotonic() > deadline or not cluster.workers["a"].alive:
                pytest.fail(f"not converged after the kill\n{cluster.logs()}")
            time.sleep(0.5)
        records = manifest.all()
    finally:
        manifest.close()
    corpus = without_tombstones(cluster, corpus_of(cluster, embedder))
    assert_index_is_bucket(cluster, embedder, corpus)
    assert most_attempts <= settings.workers.max_attempts
    statuses = {doc_id: r.status for doc_id, r in records.items() if not r.tombstone}
    assert set(statuses.values()) == {DocStatus.INDEXED}, [r for r in records.values() if r.error]
    for n in range(100, 400):  # every edit is what the index holds
        assert records[document_key(n)].content_hash == corpus.expected[document_key(n)][1]
    cluster.start_worker("b")


def test_a_golden_set_imported_on_one_host_is_evaluated_on_another_and_opens_on_a_third(
    cluster: Cluster, ingested: Corpus
) -> None:
    """`rag golden import` on host a; the nightly tenants' evaluation, sent as beat sends it, run
    by host b's worker alone; the run, its page and a signed link to it through host c's API."""
    golden = cluster.tmp / "a" / "golden.jsonl"
    items = [
        {
            "id": f"g-{n}",
            "question": f"Which note names wombat{n}v0?",
            "relevant_doc_ids": [document_key(n)],
        }
        for n in (10, 15, 20)  # acme's, unedited
    ]
    golden.write_text("".join(json.dumps(item) + "\n" for item in items))
    cluster.rag("a", "golden", "import", "--tenant", "acme", str(golden))
    if "a" in cluster.workers:
        cluster.workers.pop("a").stop()
    for name in ("b",):
        if name not in cluster.workers or not cluster.workers[name].alive:
            cluster.start_worker(name)
    settings = cluster.settings()
    send_as(settings, cluster.redis_url, "rag.eval.tenants", (), settings.workers.celery_scan_queue)
    api_c = cluster.start_api("c")
    key = json.loads(cluster.rag("c", "keys", "create", "acme", "--json"))["key"]
    headers = {"X-API-Key": key}

    def finished_runs() -> list[dict]:  # the API lists finished runs only
        return httpx.get(f"{api_c}/v1/eval/runs", headers=headers, timeout=30).json()["runs"]

    wait_for(lambda: bool(finished_runs()), 420, cluster.workers["b"], "the evaluation")
    [run] = finished_runs()
    run_id = run["run_id"]
    assert 0.0 <= run["retrieval"]["served"]["recall@5"] <= 1.0  # scored, however well
    report = httpx.get(f"{api_c}/v1/eval/runs/{run_id}", headers=headers, timeout=30)
    assert report.status_code == 200, report.text
    assert {item["id"] for item in report.json()["items"]} == {item["id"] for item in items}
    page = httpx.get(
        f"{api_c}/v1/eval/runs/{run_id}", params={"format": "html"}, headers=headers, timeout=30
    )
    assert page.status_code == 200 and "g-15" in page.text
    made = httpx.post(f"{api_c}/v1/eval/runs/{run_id}/link", headers=headers, timeout=30)
    link = urlsplit(made.json()["url"])
    opened = httpx.get(f"{api_c}{link.path}?{link.query}", timeout=30)  # no key
    assert opened.status_code == 200 and opened.text == page.text
    b_log = cluster.workers["b"].log_tail(10**8)
    assert "rag.eval.tenants" in b_log and "succeeded" in b_log
    cluster.start_worker("a")


_STEP = re.compile(r"rebuilding generation \S+: \d+/\d+ documents, (\d+) chunks embedded")


def _embedded_by_steps(worker: HostProcess, after: int = 0) -> list[int]:
    """The chunks embedded so far (a running total) at each rebuild step the worker logged past
    offset `after` of its log."""
    return [int(m) for m in _STEP.findall(worker.log_tail(10**8)[after:])]


def _log_size(worker: HostProcess) -> int:
    return len(worker.log_tail(10**8))


def test_a_rebuild_whose_worker_is_killed_is_finished_on_another_host(
    cluster: Cluster, ingested: Corpus, embedder: Embedder
) -> None:
    """RAG_CHUNK_SIZE and RAG_CHUNK_OVERLAP change on both workers: the one that starts the
    rebuild is killed with SIGKILL after a step that embedded chunks; the other host resumes the
    generation from the state database and switches, embedding only what the first had not
    cached."""
    cached_before = state_sql_set(cluster, "SELECT chunk_hash FROM embeddings")
    for worker in cluster.workers.values():
        worker.stop()
    cluster.workers.clear()
    offsets = {}
    for name in ("a", "b"):
        worker = cluster.start_worker(
            name, **{f"RAG_{k.upper()}": str(v) for k, v in REBUILT.items()}
        )
        offsets[name] = _log_size(worker)
    settings = cluster.settings()
    # What beat's index upkeep timer sends (every RAG_INDEX_OPTIMIZE_INTERVAL_SECONDS, 300 s, which
    # server mode does not let one shorten): it starts the rebuild the configuration calls for.
    upkeep = ("rag.index.optimize", (), settings.workers.celery_scan_queue)
    send_as(settings, cluster.redis_url, *upkeep)

    def rebuilding_host() -> str | None:
        for name, worker in cluster.workers.items():
            if any(_embedded_by_steps(worker, offsets[name])):
                return name
        return None

    wait_for(lambda: rebuilding_host() is not None, 420, None, "a rebuild step")
    victim_name = rebuilding_host()
    assert victim_name is not None
    victim = cluster.workers.pop(victim_name)
    victim.kill()
    embedded_by_victim = _embedded_by_steps(victim, offsets[victim_name])[-1]
    [survivor_name] = cluster.workers
    survivor = cluster.workers[survivor_name]
    # The timer's next tick; the killed worker's lock on the rebuild lapses within its TTL.
    send_as(settings, cluster.redis_url, "rag.index.rebuild", (), upkeep[2])

    def switched() -> bool:
        manifest = Manifest.open(cluster.settings())
        try:
            return bool((manifest.get_meta(REBUILD_META) or {}).get("switched"))
        finally:
            manifest.close()

    wait_for(switched, 600, survivor, "the switch on the surviving host")
    corpus = without_tombstones(cluster, corpus_of(cluster, embedder, **REBUILT))
    runtime = Runtime(cluster.settings(**REBUILT), embedder)
    try:
        assert_index_matches(runtime, corpus.expected)
    finally:
        runtime.close()
    needed = corpus.chunk_hashes - cached_before
    cached_after = state_sql_set(cluster, "SELECT chunk_hash FROM embeddings")
    assert cached_after - cached_before == needed  # one row per new chunk text
    embedded_by_survivor = max(_embedded_by_steps(survivor, offsets[survivor_name]), default=0)
    assert embedded_by_victim > 0
    # Had the survivor embedded again what the victim had cached, the two would exceed it.
    assert embedded_by_victim + embedded_by_survivor <= len(needed)
