"""Hostile bucket writers and tenant admins against a real `rag up` (issue 13, findings 3, 4, 6, 8,
9, 11 and 15; finding 10 has its own process, since it takes the bucket away).

One process serves the whole module. Its periodic scan is slowed to ten minutes, so every file
dropped after start-up reaches the index through the folder watcher's hints, which is how the
tests see that the watcher survives what they drop; a full scan is requested explicitly where a
test needs one.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from core.manifest import DocStatus
from tests.support.rag_up import RagUp
from tests.support.services import redis_url

pytestmark = pytest.mark.slow

ACME, GLOBEX = "tenants/acme", "tenants/globex"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RagUp]:
    tmp = tmp_path_factory.mktemp("hostile-bucket")
    bucket = tmp / "bucket"
    for tenant, words in ((ACME, "fox lantern"), (GLOBEX, "otter compass")):
        (bucket / tenant).mkdir(parents=True)
        for n in range(3):
            (bucket / tenant / f"doc{n}.txt").write_text(f"The {words} note number {n}.")
    rag = RagUp(tmp, redis_url(13), bucket, RAG_SCAN_INTERVAL_SECONDS="600")
    rag.start(umask=0o022)
    try:
        rag.wait_for(lambda: _statuses(rag, "doc") == {DocStatus.INDEXED: 6}, 240, "not indexed")
        yield rag
    finally:
        rag.stop()


def _statuses(up: RagUp, part: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for doc_id, record in up.records().items():
        if part in doc_id:
            counts[record.status] = counts.get(record.status, 0) + 1
    return counts


def _settled(up: RagUp, doc_id: str):
    """The document's record once it is indexed or failed (through the watcher's hint)."""

    def check():
        record = up.records().get(doc_id)
        return record if record and record.status in (DocStatus.INDEXED, DocStatus.FAILED) else None

    return up.wait_for(check, 120, f"{doc_id!r} never settled")


def _full_scan(up: RagUp) -> dict:
    """Request a full scan and wait until one that started after now has recorded its result."""
    asked = time.time()
    up.request_scan()

    def done():
        manifest = up.manifest()
        try:
            scan = manifest.get_meta("last_scan")
        finally:
            manifest.close()
        return scan if scan and scan["started_at"] > asked else None

    return up.wait_for(done, 120, "no full scan ran")


@pytest.fixture(scope="module")
def keys(up: RagUp) -> dict[str, str]:
    return {
        "acme_admin": up.mint("acme", "admin"),
        "acme": up.mint("acme"),
        "globex": up.mint("globex"),
        "globex_admin": up.mint("globex", "admin"),
    }


def test_undecodable_name_is_quarantined_and_poisons_nothing(
    up: RagUp, keys: dict[str, str]
) -> None:
    """Finding 9: `bad\\xff.txt` in acme; a globex file dropped afterwards still indexes through
    the watcher, acme's name is quarantined with a reason, and an admin DELETE answers 200."""
    root = os.fsencode(up.bucket / ACME)
    with open(root + b"/bad\xff.txt", "wb") as f:
        f.write(b"Undecodable name, harmless text.")
    bad = _settled(up, f"{ACME}/bad\\xff.txt")
    assert bad.status == DocStatus.FAILED and "UTF-8" in bad.error
    assert bad.tenant_id == "acme"
    (up.bucket / GLOBEX / "after.txt").write_text("Globex wombat arrives after the bad name.")
    assert _settled(up, f"{GLOBEX}/after.txt").status == DocStatus.INDEXED
    # The quarantined name is listed, and fetched and deleted by its id, like any other.
    listed = up.client.get("/v1/documents", headers=up.headers(keys["acme"])).json()
    assert f"{ACME}/bad\\xff.txt" in {d["doc_id"] for d in listed["documents"]}
    reply = up.client.delete(
        f"/v1/documents/{quote(f'{ACME}/doc2.txt')}", headers=up.headers(keys["acme_admin"])
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "deleted"
    scan = _full_scan(up)
    assert "error" not in scan, scan
    assert "within a transaction" not in up.log()
    assert "Traceback" not in up.log() and "FolderWatcher failed" not in up.log()


def test_undecodable_directory_does_not_stop_the_watcher_for_ever(up: RagUp) -> None:
    """Finding 9, a directory this time: file events cannot name what is inside it, yet files
    dropped elsewhere still index without a periodic scan."""
    root = os.fsencode(up.bucket / ACME)
    os.mkdir(root + b"/dir\xfe")
    with open(root + b"/dir\xfe/inner.txt", "wb") as f:
        f.write(b"Inside an undecodable directory.")
    inner = _settled(up, f"{ACME}/dir\\xfe/inner.txt")
    assert inner.status == DocStatus.FAILED and "UTF-8" in inner.error
    (up.bucket / GLOBEX / "later.txt").write_text("Globex platypus, dropped after the directory.")
    assert _settled(up, f"{GLOBEX}/later.txt").status == DocStatus.INDEXED


def test_hard_link_to_a_file_outside_the_bucket_is_refused(up: RagUp, keys: dict[str, str]) -> None:
    """Finding 3: a hard link's text never reaches the index, and status says why."""
    secret = up.tmp / "outside-secret.txt"
    secret.write_text("root:zebrasecret:the server's own file")
    os.link(secret, up.bucket / ACME / "linked.txt")
    linked = _settled(up, f"{ACME}/linked.txt")
    assert linked.status == DocStatus.FAILED and "hard link" in linked.error
    reply = up.client.post(
        "/v1/search",
        json={"query": "zebrasecret", "mode": "bm25"},
        headers=up.headers(keys["acme"]),
    )
    assert reply.status_code == 200 and reply.json()["results"] == []


def test_hits_name_the_document_relative_to_the_bucket(up: RagUp, keys: dict[str, str]) -> None:
    """Finding 6: no hit reveals where the bucket lives on the server."""
    reply = up.client.post(
        "/v1/search", json={"query": "fox lantern", "top_k": 5}, headers=up.headers(keys["acme"])
    )
    hits = reply.json()["results"]
    assert hits and {h["source"] for h in hits} <= {f"{ACME}/doc{n}.txt" for n in range(3)}
    assert str(up.bucket) not in reply.text and "file://" not in reply.text
    document = up.client.get(
        f"/v1/documents/{ACME}/doc0.txt", headers=up.headers(keys["acme"])
    ).json()
    assert document["source"] == f"{ACME}/doc0.txt"


@pytest.mark.parametrize(
    "name",
    ["line\nbreak.txt", "carriage\rreturn.txt", "tab\there.txt", "100% sure?#&+=.txt", "  s p.txt"],
)
def test_every_listed_name_round_trips_through_the_url(
    up: RagUp, keys: dict[str, str], name: str
) -> None:
    """Finding 4: what the listing shows can be fetched and deleted by its id."""
    (up.bucket / ACME / name).write_text(f"A document named {name!r}.")
    doc_id = f"{ACME}/{name}"
    _settled(up, doc_id)
    listed = up.client.get("/v1/documents", headers=up.headers(keys["acme"])).json()
    assert doc_id in {d["doc_id"] for d in listed["documents"]}
    url = f"/v1/documents/{quote(doc_id, safe='/')}"
    fetched = up.client.get(url, headers=up.headers(keys["acme"]))
    assert fetched.status_code == 200 and fetched.json()["doc_id"] == doc_id, fetched.text
    deleted = up.client.delete(url, headers=up.headers(keys["acme_admin"]))
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted", deleted.text


def test_overlong_name_is_quarantined_once(up: RagUp) -> None:
    """Finding 15: a 250-byte name (its sidecar's name would pass 255) is quarantined with a
    reason, not retried by later scans, and does not stop the watcher."""
    name = "n" * 246 + ".txt"
    (up.bucket / ACME / name).write_text("A long name.")
    record = _settled(up, f"{ACME}/{name}")
    assert record.status == DocStatus.FAILED and "255" in record.error
    for _ in range(2):
        _full_scan(up)
    again = up.records()[f"{ACME}/{name}"]
    assert (again.attempts, again.updated_at) == (record.attempts, record.updated_at)
    assert "File name too long" not in up.log()
    (up.bucket / GLOBEX / "after-long.txt").write_text("Globex quoll after the long name.")
    assert _settled(up, f"{GLOBEX}/after-long.txt").status == DocStatus.INDEXED


def test_tenant_admin_manages_only_its_own_keys(up: RagUp, keys: dict[str, str]) -> None:
    """Finding 11: an acme admin can neither mint, list nor revoke globex keys; the operator can."""
    acme_admin = up.headers(keys["acme_admin"])
    minted = up.client.post(
        "/v1/keys", json={"tenant": "globex", "role": "admin"}, headers=acme_admin
    )
    assert minted.status_code == 403, minted.text
    assert minted.json()["error"]["field"] == "tenant"
    own = up.client.post("/v1/keys", json={"tenant": "acme"}, headers=acme_admin)
    assert own.status_code == 201 and own.json()["tenant"] == "acme"
    listed = up.client.get("/v1/keys", headers=acme_admin).json()
    assert listed and {k["tenant"] for k in listed} == {"acme"}
    assert (
        up.client.get("/v1/keys", params={"tenant": "globex"}, headers=acme_admin).status_code
        == 403
    )
    everyone = up.client.get("/v1/keys", headers=up.headers()).json()
    globex_ids = [k["key_id"] for k in everyone if k["tenant"] == "globex"]
    assert globex_ids and {k["tenant"] for k in everyone} >= {"acme", "globex"}
    for key_id in globex_ids:
        revoked = up.client.delete(f"/v1/keys/{key_id}", headers=acme_admin)
        assert revoked.status_code == 404, revoked.text
    status = up.client.get("/v1/status", headers=up.headers(keys["globex"]))
    assert status.status_code == 200  # the globex keys still work


def test_data_dir_is_private_whatever_the_umask(up: RagUp) -> None:
    """Finding 8: `rag up` ran under umask 022; nothing of the data dir is readable by others."""
    data = up.settings.data_dir
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    loose = [
        (str(p.relative_to(data)), oct(stat.S_IMODE(p.lstat().st_mode)))
        for p in [data, *data.rglob("*")]
        # A symlink's own mode means nothing (`shard` points at `shard.v<N>`, checked itself).
        if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077
    ]
    assert not loose
    names = {p.name for p in data.rglob("*")}
    assert {"shard.lock", "manifest.sqlite", "manifest.sqlite-wal", "audit.log"} <= names
