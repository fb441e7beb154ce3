"""The secret that signs report links: made once, whole, by the first of many concurrent users,
and never short, in real processes; kept in the state database, so a link made on one host opens
on another.

A key file created and then written let a concurrent reader sign with `b""` (so anyone could
forge a link) and a second writer raise; an empty key file was then accepted for good.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.server import check_can_start
from cli.main import app as cli_app
from cli.terminal import error_line
from core.embedding import Embedder
from core.settings import Settings, get_settings
from core.state.secrets import stored_secret
from eval.links import (
    KEY_FILE,
    MIN_SECRET_BYTES,
    SECRET_NAME,
    LinkSecretError,
    ReportLinks,
    link_secret,
)
from serving.platform import Platform
from tests.support.api_env import prepare_runtime
from tests.support.services import postgres_url

PROCESSES, THREADS, ROUNDS = 4, 4, 40
# One process of users: THREADS threads that, once the start file appears, each use the secret
# of every round's fresh data dir at the same moment (a barrier per round); prints one JSON line
# [round, secret hex or the error] per use.
USERS = """
import json, sys, threading, time
from pathlib import Path
from core.settings import Settings
from eval.links import link_secret

root, start = Path(sys.argv[1]), Path(sys.argv[2])
rounds, threads = int(sys.argv[3]), int(sys.argv[4])
settings = [Settings(data_dir=root / f"round-{n}") for n in range(rounds)]
barrier, printing = threading.Barrier(threads), threading.Lock()

def user():
    for n in range(rounds):
        barrier.wait()
        try:
            used = link_secret(settings[n]).hex()
        except Exception as exc:
            used = f"{type(exc).__name__}: {exc}"
        with printing:
            print(json.dumps([n, used]), flush=True)

deadline = time.monotonic() + 120
while not start.exists():
    if time.monotonic() > deadline:
        sys.exit("no start signal")
    time.sleep(0.001)
users = [threading.Thread(target=user) for _ in range(threads)]
for t in users:
    t.start()
for t in users:
    t.join()
"""


def test_concurrent_first_uses_all_sign_with_one_complete_secret(tmp_path: Path) -> None:
    start = tmp_path / "start"
    argv = [sys.executable, "-c", USERS, str(tmp_path), str(start), str(ROUNDS), str(THREADS)]
    cwd = Path(__file__).parents[1]
    procs = [
        subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(PROCESSES)
    ]
    start.touch()
    seen: dict[int, set[str]] = {}
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        for line in out.decode().splitlines():
            n, used = json.loads(line)
            seen.setdefault(n, set()).add(used)
    assert sorted(seen) == list(range(ROUNDS))
    for n, used in sorted(seen.items()):
        assert len(used) == 1, (n, used)  # one secret per data dir, and no error
        (secret,) = used
        assert len(bytes.fromhex(secret)) >= MIN_SECRET_BYTES, (n, secret)
        stored = stored_secret(Settings(data_dir=tmp_path / f"round-{n}"), SECRET_NAME, "unused")
        assert stored.encode().hex() == secret
    leftovers = [p.name for p in tmp_path.rglob(".*")]
    assert leftovers == []  # no temporary key file is left behind


@pytest.mark.parametrize("content", [b"", b"\n", b"0123456789abcdef\n"])
def test_a_short_or_empty_key_file_is_refused(tmp_path: Path, content: bytes) -> None:
    settings = Settings(data_dir=tmp_path)
    (tmp_path / KEY_FILE).write_bytes(content)
    with pytest.raises(LinkSecretError, match=f"{KEY_FILE} holds .* at least {MIN_SECRET_BYTES}"):
        link_secret(settings)


def test_a_short_secret_setting_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, eval_link_secret="not-long-enough")
    with pytest.raises(LinkSecretError, match="RAG_EVAL_LINK_SECRET holds 15 bytes"):
        link_secret(settings)
    assert not (tmp_path / KEY_FILE).exists()
    long_enough = Settings(data_dir=tmp_path, eval_link_secret="s" * MIN_SECRET_BYTES)
    assert link_secret(long_enough) == b"s" * MIN_SECRET_BYTES


def test_a_link_signed_with_an_empty_key_is_refused(tmp_path: Path) -> None:
    links = ReportLinks.open(Settings(data_dir=tmp_path))
    expires = 2**40
    forged = hmac.new(b"", f"acme\nrun\n{expires}".encode(), hashlib.sha256).hexdigest()
    assert not links.is_valid("acme", "run", expires, forged)
    url = links.link("acme", "run")
    real = url.split("sig=")[1]
    assert links.is_valid("acme", "run", int(url.split("expires=")[1].split("&")[0]), real)


def test_the_api_rag_up_and_rag_eval_refuse_to_start_with_an_empty_key_file(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, _ = prepare_runtime(tmp_path, embedder, ingest=False)
    key_file = runtime.settings.data_dir / KEY_FILE
    key_file.write_bytes(b"")
    try:
        with (
            pytest.raises(LinkSecretError, match="at least 32"),
            TestClient(create_app(Platform(runtime))),
        ):
            pass
    finally:
        runtime.close()
    with pytest.raises(LinkSecretError) as refused:  # `rag up` and `rag serve`, before the model
        check_can_start(runtime.settings)
    assert error_line(refused.value) == (str(refused.value), 2)  # one line, exit status 2
    monkeypatch.setenv("RAG_DATA_DIR", str(runtime.settings.data_dir))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli_app, ["eval", "--tenant", "acme"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and f"{key_file} holds 0 bytes" in result.output


def test_a_link_made_on_one_host_opens_on_another(tmp_path: Path) -> None:
    """Each host had its own key file: a link one host signed, another refused."""
    url = postgres_url("links_two_hosts")
    a, b = (Settings(data_dir=tmp_path / h, state={"url": url}) for h in ("a", "b"))
    link = ReportLinks.open(a).link("acme", "run-1")
    expires = int(link.split("expires=")[1].split("&")[0])
    assert ReportLinks.open(b).is_valid("acme", "run-1", expires, link.split("sig=")[1])
    assert not (tmp_path / "a" / KEY_FILE).exists() and not (tmp_path / "b").exists()


def test_the_key_file_of_an_earlier_release_is_adopted(tmp_path: Path) -> None:
    """Links signed before the upgrade keep opening after it."""
    key = "k" * 64
    (tmp_path / KEY_FILE).write_text(key + "\n")
    settings = Settings(data_dir=tmp_path)
    assert link_secret(settings) == key.encode()
    (tmp_path / KEY_FILE).unlink()  # adopted: the state database holds it now
    assert link_secret(settings) == key.encode()
