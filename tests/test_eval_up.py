"""A tenant's evaluation against a real `rag up` process: the golden set imported with the CLI,
`rag eval --tenant acme` run while `rag up` holds the shard (so its workers run it, showing their
progress), and every question's report hits compared with what `POST /v1/search` returns for it.
Without a worker to take it, `rag eval` says so within its bound (issue 24, finding 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from api.auth import create_key
from core.index.lock import ShardLock
from core.settings import Settings
from eval.golden import GoldenItem
from eval.golden_store import GoldenStore
from tests.support.golden import save_golden
from tests.support.services import redis_url
from tests.support.workers import OwnRedis
from workers.redis_server import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent
TOPICS = [
    ("volcano", "Lava from the volcano cooled into black basalt on the island's southern coast."),
    ("glacier", "The glacier retreated two kilometres in forty years as summers grew warmer."),
    ("bakery", "The bakery proofs its sourdough overnight and bakes it at dawn in a stone oven."),
    ("orchard", "Apple trees in the orchard are pruned in late winter before the buds swell."),
    ("harbour", "Fishing boats unload their catch at the harbour before the morning market."),
    ("library", "The library lends telescopes as well as books, for two weeks at a time."),
    ("railway", "The mountain railway climbs a gradient of twelve percent with a rack rail."),
    ("beehive", "A beehive holds one queen, thousands of workers and a few hundred drones."),
    ("lighthouse", "The lighthouse lamp turns once every ten seconds and is seen for 20 miles."),
    ("vineyard", "Grapes in the vineyard are picked by hand when their sugar level peaks."),
]
DOCS = {
    f"tenants/acme/{name}-{n}.txt": f"{text} Note {n} on the {name}, entry {n * 3 + 1}.\n"
    for n in range(3)
    for name, text in TOPICS
}
QUESTIONS = [
    "How did the basalt form?",
    "How fast did the ice retreat?",
    "When is the sourdough baked?",
    "When are the apple trees pruned?",
    "Where do boats unload fish?",
    "What can you borrow besides books?",
    "How steep is the mountain railway?",
    "How many queens live in a hive?",
    "How often does the lamp turn?",
    "When are the grapes picked?",
]


def test_report_hits_equal_the_served_search_under_rag_up(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    for key, text in {**DOCS, "tenants/globex/secret.txt": "Globex volcano secret."}.items():
        (bucket / key).parent.mkdir(parents=True, exist_ok=True)
        (bucket / key).write_text(text)
    url = redis_url(11)
    redis.Redis.from_url(url).flushdb()
    port = free_port()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_BUCKET_URL": str(bucket),
        "RAG_REDIS_URL": url,
        "RAG_API_PORT": str(port),
        "RAG_EVAL_REPORTS_DIR": str(tmp_path / "reports"),
        "RAG_SCAN_INTERVAL_SECONDS": "2",
    }
    settings = Settings(data_dir=tmp_path / "data")
    acme, globex = create_key(settings, "acme", "reader"), create_key(settings, "globex", "reader")
    golden = tmp_path / "golden.jsonl"
    items = [
        GoldenItem(
            id=f"q{n:02}-{variant}",
            question=q if variant == "a" else f"{q} (variant)",
            relevant_doc_ids=[f"tenants/acme/{TOPICS[n][0]}-0.txt"],
        )
        for n, q in enumerate(QUESTIONS)
        for variant in ("a", "b")
    ]
    save_golden(items, golden)
    rag = [sys.executable, "-m", "cli.main"]
    imported = subprocess.run(
        [*rag, "golden", "import", "--tenant", "acme", str(golden)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen([*rag, "up"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert up.poll() is None and time.monotonic() < deadline, "rag up did not index"
            try:
                found = api.post(
                    "/v1/search",
                    json={"query": "vineyard", "top_k": 100},
                    headers={"X-API-Key": acme},
                )
                if found.status_code == 200 and len(
                    {h["doc_id"] for h in found.json()["results"]}
                ) == len(DOCS):
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        # Started with another bucket, as `make run BUCKET=...` starts `rag up` and a shell
        # without RAG_BUCKET_URL runs `rag eval`: the run still goes to the workers serving this
        # data dir.
        run = subprocess.run(
            [*rag, "eval", "--tenant", "acme"],
            env={**env, "RAG_BUCKET_URL": str(tmp_path / "elsewhere")},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        shown = run.stderr.splitlines()  # progress; stdout holds the results
        progress = [
            "queued the run for its workers",
            "started by a worker",
            "searching 20 golden items of acme (hybrid)",
            "scored 2 of 20 golden items",
            "scored 20 of 20 golden items",
        ]
        at = [next((n for n, line in enumerate(shown) if p in line), -1) for p in progress]
        assert -1 not in at and at == sorted(at), run.stderr  # each shown, in this order
        run_id = run.stdout.strip().splitlines()[-1]
        mine = api.get(f"/v1/eval/runs/{run_id}", headers={"X-API-Key": acme})
        assert mine.status_code == 200, mine.text
        report = mine.json()
        assert report["run_id"] == run_id and len(report["items"]) == 20
        k = report["search"]["top_k"]
        for row in report["items"]:
            served = api.post(
                "/v1/search",
                json={"query": row["question"], "top_k": k, "mode": "hybrid"},
                headers={"X-API-Key": acme},
            ).json()
            assert [h["id"] for h in row["hits"]] == [h["id"] for h in served["results"]]
            assert all(h["doc_id"].startswith("tenants/acme/") for h in row["hits"])
        assert report["retrieval"]["served"]["means"]["recall@5"] > 0.5
        theirs = api.get(f"/v1/eval/runs/{run_id}", headers={"X-API-Key": globex})
        assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "run_not_found"
    finally:
        api.close()
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=60)
        log.close()


def test_rag_eval_without_a_worker_fails_within_its_bound_saying_what_to_start(
    tmp_path: Path, own_redis: OwnRedis
) -> None:
    """The index is held by a process that runs no workers (here: this test, holding the shard's
    lock as `rag serve` would): the handed-off run is never started, and `rag eval` says so once
    RAG_EVAL_WORKER_START_TIMEOUT_SECONDS have passed, not after the run's own limit (6,600 s by
    default). With no Redis at RAG_REDIS_URL at all, it says that at once."""
    settings = Settings(data_dir=tmp_path / "data")
    golden = GoldenStore.open(settings)  # something to evaluate, or it is refused at once
    golden.put("acme", [GoldenItem(id="q1", question="what orbits?")])
    golden.close()
    holder = ShardLock(settings.shard_path)
    holder.acquire()
    env = {
        **os.environ,
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_BUCKET_URL": str(tmp_path / "bucket"),
        "RAG_REDIS_URL": own_redis.url,
        "RAG_EVAL_WORKER_START_TIMEOUT_SECONDS": "3",
    }
    rag = [sys.executable, "-m", "cli.main", "eval", "--tenant", "acme"]
    try:
        run = subprocess.run(rag, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        out = " ".join((run.stdout + run.stderr).split())
        assert run.returncode == 1, out
        assert "queued the run for its workers" in out and "waiting up to 3 s" in out, out
        assert "no worker started the evaluation within 3 s" in out, out
        assert f"pid {os.getpid()}" in out  # the holder, named
        assert "start `rag up` (or `rag worker`)" in out and "check RAG_REDIS_URL" in out, out
        assert "Traceback" not in out
        dead = {**env, "RAG_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
        run = subprocess.run(rag, env=dead, cwd=REPO, capture_output=True, text=True, timeout=300)
        out = " ".join((run.stdout + run.stderr).split())
        assert run.returncode == 1, out
        assert "no Redis answers at" in out and "RAG_REDIS_URL" in out, out
        assert "Traceback" not in out
    finally:
        holder.release()
