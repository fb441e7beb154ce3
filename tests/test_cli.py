"""`rag` as a user runs it, a subprocess: one line on stderr for each mistake, exit status 0 ok,
1 the job failed, 2 usage or configuration error; tracebacks only with --debug; untrusted text
(document names, failure reasons, key labels) printed escaped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from core.index.lock import ShardLock
from core.manifest import DocStatus, DocumentRecord, Manifest, RunSummary
from core.types import TenantScope
from tests.support.services import redis_url
from tests.support.stores import key_store
from workers.redis_server import free_port

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_NAME = "tenants/acme/\x1b]0;TITLE\x07evil[/].txt"
HOSTILE_REASON = "parse error at [/] and [bold red]markup[/bold red]\x1b[2J"


def rag(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "AWS_"))}
    base |= {
        "PYTHONPATH": str(ROOT),
        "RAG_DATA_DIR": str(tmp / "data"),
        "RAG_BUCKET_URL": str(tmp / "bucket"),
        "RAG_REDIS_URL": redis_url(9),
        "COLUMNS": "200",
    }
    return subprocess.run(
        ["rag", *args],
        env=base | env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
    )


def one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rag: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_search_finds_what_ingest_wrote_under_the_default_data_dir(tmp_path: Path) -> None:
    """`make run` from nothing: the data dir is the default `.rag`, relative to the working
    directory. Reopening a shard there deleted its served folder (`_recover_swap` took it for a
    stale copy), so the search after `rag ingest` found 0 hits (and `rag up` synced every
    document again)."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "puffins.txt").write_text("Puffins nest in burrows dug into sea cliffs.")
    (bucket / "tea.txt").write_text("Green tea is steamed or pan-fired after picking.")
    ingest = rag(tmp_path, "ingest", "bucket", RAG_DATA_DIR=".rag")
    assert ingest.returncode == 0, ingest.stderr
    found = rag(tmp_path, "search", "where do puffins nest", "--json", RAG_DATA_DIR=".rag")
    assert found.returncode == 0, found.stderr
    assert [h["doc_id"] for h in json.loads(found.stdout)["results"]][:1] == ["puffins.txt"]
    assert (tmp_path / ".rag" / "manifest.sqlite").exists()


def test_search_says_nothing_of_a_reranker_it_was_not_asked_for(tmp_path: Path) -> None:
    """No cross-encoder ships, so the default reranker cannot load: every `rag search` printed
    why, reranking asked for or not. Without --rerank it is not loaded; with it, one line names
    the model and what to set, status 2."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    (bucket / "puffins.txt").write_text("Puffins nest in burrows dug into sea cliffs.")
    missing = {"RAG_RERANKER_MODEL": "example-org/no-such-reranker"}
    assert rag(tmp_path, "ingest", **missing).returncode == 0
    plain = rag(tmp_path, "search", "where do puffins nest", **missing)
    assert plain.returncode == 0 and "puffins.txt" in plain.stdout, plain.stderr
    assert plain.stderr == ""
    reranked = rag(tmp_path, "search", "where do puffins nest", "--rerank", **missing)
    one_line_error(
        reranked,
        2,
        "reranker_unavailable (rerank)",
        "example-org/no-such-reranker",
        "RAG_RERANKER_MODEL",
    )


def test_version_and_help_list_choices_and_exit_codes(tmp_path: Path) -> None:
    version = rag(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("rag 0.")
    create = rag(tmp_path, "keys", "create", "--help")
    assert create.returncode == 0 and "reader|admin" in create.stdout
    assert "Exit status: 0 ok, 1 the job failed, 2 usage or configuration error" in create.stdout


def test_a_missing_folder_is_one_line_and_status_2(tmp_path: Path) -> None:
    one_line_error(rag(tmp_path, "ingest", str(tmp_path / "nope")), 2, "no folder", "nope")
    one_line_error(rag(tmp_path, "up"), 2, "no folder", "RAG_BUCKET_URL")
    debug = rag(tmp_path, "--debug", "ingest", str(tmp_path / "nope"))
    assert debug.returncode == 2 and "Traceback (most recent call last)" in debug.stderr


def test_usage_and_setting_errors_are_status_2(tmp_path: Path) -> None:
    one_line_error(rag(tmp_path, "status", "--bogus"), 2, "--bogus", "rag status --help")
    one_line_error(rag(tmp_path, "keys", "create", "acme", "--role", "root"), 2, "root")
    no_documents = rag(tmp_path, "keys", "create", "defualt")
    one_line_error(no_documents, 2, "no documents for tenant 'defualt'", "--force")
    one_line_error(rag(tmp_path, "status", RAG_API_PORT="eighty"), 2, "RAG_API_PORT")


def test_a_busy_port_fails_before_the_model_loads(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        result = rag(tmp_path, "serve", "--port", port)
    one_line_error(result, 2, f"port {port}", "in use", "RAG_API_PORT")


def test_serve_while_another_process_holds_the_shard(tmp_path: Path) -> None:
    lock = ShardLock(tmp_path / "data" / "shard")
    lock.acquire()
    try:
        result = rag(tmp_path, "serve", "--port", str(free_port()))
    finally:
        lock.release()
    one_line_error(result, 2, "is in use by", "only one process")


def test_an_s3_bucket_without_credentials(tmp_path: Path) -> None:
    result = rag(
        tmp_path,
        "ingest",
        RAG_BUCKET_URL="s3://docs/in",
        RAG_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    one_line_error(result, 2, "no credentials", "RAG_AWS_ACCESS_KEY_ID")


def test_status_prints_hostile_names_and_reasons_escaped(tmp_path: Path) -> None:
    """Finding 5 of issue 13: rich markup in a reason crashed `rag status --failed`, and an OSC
    escape in a name retitled the operator's terminal."""
    manifest = Manifest.at(tmp_path / "data" / "manifest.sqlite")
    manifest.put(
        DocumentRecord(HOSTILE_NAME, "acme", "file:///x", DocStatus.FAILED, error=HOSTILE_REASON),
        DocumentRecord("tenants/acme/[/]ok.txt", "acme", "file:///y", DocStatus.INDEXED),
    )
    manifest.record_run(RunSummary(added=1, failed=1, started_at=1.7e9, finished_at=1.7e9 + 2))
    manifest.set_meta("last_scan", {"started_at": 1.7e9, "sync": 2, "delete": 0, "in_flight": 0})
    manifest.close()
    result = rag(tmp_path, "status", "--failed")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;TITLE\\x07evil[/].txt" in out
    assert "[bold red]markup[/bold red]\\x1b[2J" in out
    assert "1700000000" not in out and "2023-11-1" in out  # a date, not an epoch float
    assert "sync" in out and "in flight" in out  # the last scan as a table
    as_json = rag(tmp_path, "status", "--failed", "--json")
    assert as_json.returncode == 0 and "\x1b" not in as_json.stdout
    report = json.loads(as_json.stdout)
    assert report["failed"] == [{"doc_id": HOSTILE_NAME, "attempts": 0, "error": HOSTILE_REASON}]
    assert report["documents"] == {"indexed": 1, "failed": 1} and report["last_scan"]["sync"] == 2


@pytest.mark.parametrize("label", ["two\nlines", "bell\x07", "esc\x1b[2J"])
def test_key_labels_with_control_characters_are_refused(tmp_path: Path, label: str) -> None:
    one_line_error(rag(tmp_path, "keys", "create", "acme", "--label", label), 2, "label")
    store = key_store(tmp_path / "data" / "api_keys.sqlite")
    assert store.list() == []
    store.close()


def test_keys_list_prints_labels_escaped_and_as_json(tmp_path: Path) -> None:
    """Finding 16 of issue 13: a label holding markup crashed `rag keys list`."""
    store = key_store(tmp_path / "data" / "api_keys.sqlite")
    store.create(TenantScope("acme"), "reader", "[/] ops [bold]")
    store.close()
    created = rag(tmp_path, "keys", "create", "acme", "--label", "ci", "--json", "--force")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith(f"rag_{key['key_id']}_") and key["tenant"] == "acme"
    listed = rag(tmp_path, "keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert "[/] ops [bold]" in listed.stdout
    as_json = json.loads(rag(tmp_path, "keys", "list", "--json").stdout)
    assert [k["label"] for k in as_json] == ["[/] ops [bold]", "ci"]


@pytest.mark.parametrize(
    "args",
    [
        ["deletes", "confirm", "--tenant", ""],
        ["deletes", "confirm", "--tenant", "ac.me"],
        ["deletes", "confirm", "--tenant", "acme\n"],
        ["status", "--tenant", ""],
        ["keys", "list", "--tenant", ""],
        ["search", "fox", "--tenant", ""],
    ],
)
def test_an_empty_or_invalid_tenant_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    """Issue 23: `rag deletes confirm --tenant ''` confirmed deletes held for tenant '' (which
    the API refuses), `status` and `keys list` took '' for every tenant and `search` for the
    default one. Every --tenant is a tenant id, or status 2 naming the rule."""
    result = rag(tmp_path, *args)
    one_line_error(result, 2, "--tenant", "invalid tenant id", "letters, digits")
    assert not (tmp_path / "data" / "manifest.sqlite").exists()  # refused before anything ran
