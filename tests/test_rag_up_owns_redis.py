"""`rag up` owns the redis-server it starts: it says so with the port, and the server stops when
`rag up` does, whether by SIGTERM (what systemd, Docker and Kubernetes send), SIGINT or a crash;
a stop asked for by either signal exits 0 once done (it exited 143 or 130: `make run` reported
`make: *** Error 143`, issue 24 finding 8).

Before, SIGTERM left the server running, re-parented to PID 1: uvicorn re-raises the signal once
it has shut down, which killed the process before its `finally` could stop Redis.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import alive, wait_gone
from workers.redis_server import answers, free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
STARTED = re.compile(r"started its own at (redis://127\.0\.0\.1:\d+/\d+) \(redis-server, pid (\d+)")


def _wait_for(log: Path, up: subprocess.Popen, pattern: re.Pattern[str]) -> re.Match[str]:
    deadline = time.monotonic() + 180
    while not (found := pattern.search(log.read_text(errors="replace"))):
        assert up.poll() is None, log.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, "rag up did not get there in 180 s"
        time.sleep(0.2)
    return found


@pytest.mark.parametrize(
    ("sig", "serving"),
    [(signal.SIGTERM, True), (signal.SIGINT, False), (signal.SIGKILL, False)],
    ids=["sigterm-while-serving", "sigint-while-starting", "crash"],
)
def test_the_redis_rag_up_started_stops_with_it(
    tmp_path: Path, sig: signal.Signals, serving: bool
) -> None:
    (tmp_path / "bucket").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")} | {
        "PYTHONPATH": str(ROOT),
        "RAG_DATA_DIR": str(tmp_path / "data"),
        "RAG_BUCKET_URL": str(tmp_path / "bucket"),
        "RAG_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "RAG_API_PORT": str(port),
        "RAG_SCAN_INTERVAL_SECONDS": "600",
    }
    log_path = tmp_path / "up.log"
    with log_path.open("wb") as log:
        up = subprocess.Popen(["rag", "up"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        started = _wait_for(log_path, up, STARTED)
        url, redis_pid = started.group(1), int(started.group(2))
        assert answers(url) and alive(redis_pid)
        if serving:
            _wait_for(log_path, up, re.compile("worker pool .* started"))
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
        up.send_signal(sig)
        code = up.wait(timeout=90)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    expected = {signal.SIGTERM: 0, signal.SIGINT: 0, signal.SIGKILL: -9}
    assert code == expected[sig], log_path.read_text(errors="replace")[-3000:]
    assert wait_gone(redis_pid, timeout=30), f"redis-server {redis_pid} outlived rag up"
    assert not answers(url)
