"""A bucket that goes away is not an empty bucket (issue 13, finding 10), against a real `rag up`.

A missing root (an unmounted volume, a renamed folder) makes the scan fail loudly and delete
nothing; a scan that would delete more than `scan_hold_deletes_share` of a tenant's documents at
once holds those deletes, says so in status, and carries them out only once an operator confirms.
"""

from __future__ import annotations

import time

import pytest

from core.manifest import DocStatus
from tests.support.rag_up import RagUp
from tests.support.services import redis_url

pytestmark = pytest.mark.slow


def _last_scan(up: RagUp, after: float) -> dict | None:
    manifest = up.manifest()
    try:
        scan = manifest.get_meta("last_scan")
    finally:
        manifest.close()
    return scan if scan and scan["started_at"] > after else None


def _indexed(up: RagUp, tenant: str) -> int:
    return sum(
        r.status == DocStatus.INDEXED and r.tenant_id == tenant for r in up.records().values()
    )


def test_missing_root_and_mass_deletes_delete_nothing_until_confirmed(tmp_path) -> None:
    bucket = tmp_path / "bucket"
    for tenant in ("acme", "globex"):
        (bucket / "tenants" / tenant).mkdir(parents=True)
        for n in range(6):
            (bucket / "tenants" / tenant / f"doc{n}.txt").write_text(f"{tenant} puffin note {n}.")
    up = RagUp(tmp_path, redis_url(14), bucket, RAG_SCAN_INTERVAL_SECONDS="1").start()
    try:
        up.wait_for(lambda: _indexed(up, "acme") == _indexed(up, "globex") == 6, 240, "indexing")
        acme_admin = up.mint("acme", "admin")
        globex = up.mint("globex")
        chunks = up.client.get("/v1/status", headers=up.headers(globex)).json()["index_chunks"]
        assert chunks > 0

        # The root disappears: scans fail with a reason, nothing is deleted.
        moved = tmp_path / "unmounted"
        bucket.rename(moved)
        since = time.time()
        for _ in range(3):
            scan = up.wait_for(lambda t=since: _last_scan(up, t), 60, "no scan reported")
            assert "does not exist" in scan["error"] and scan["delete"] == 0
            since = scan["started_at"]
        assert _indexed(up, "acme") == _indexed(up, "globex") == 6
        status = up.client.get("/v1/status", headers=up.headers(globex)).json()
        assert status["index_chunks"] == chunks and "deleted nothing" in status["scan_error"]
        assert str(tmp_path) not in str(status)
        assert "ERROR" in up.log() and "does not exist" in up.log()
        moved.rename(bucket)

        # Five of acme's six documents go at once: held, shown in status, globex untouched.
        for n in range(1, 6):
            (bucket / "tenants/acme" / f"doc{n}.txt").unlink()
        (bucket / "tenants/globex/doc0.txt").unlink()  # one of six: below the share, deleted
        removed = time.time()
        up.wait_for(lambda: _last_scan(up, removed), 60, "no scan after the removal")
        up.wait_for(lambda: _indexed(up, "globex") == 5, 60, "globex's delete did not happen")
        acme = up.client.get("/v1/status", headers=up.headers(acme_admin)).json()
        assert acme["held_deletes"] == 5 and acme["scan_error"] is None
        assert _indexed(up, "acme") == 6
        assert up.client.get("/v1/status", headers=up.headers(globex)).json()["held_deletes"] == 0

        # One comes back on its own; the admin confirms the rest, which then go.
        (bucket / "tenants/acme/doc5.txt").write_text("acme puffin note 5.")
        back = time.time()
        up.wait_for(lambda: _last_scan(up, back), 60, "no scan after the return")
        acme = up.client.get("/v1/status", headers=up.headers(acme_admin)).json()
        assert acme["held_deletes"] == 4 and _indexed(up, "acme") == 6
        reader = up.client.post(
            "/v1/documents/confirm-deletes", headers=up.headers(up.mint("acme"))
        )
        assert reader.status_code == 403
        confirmed = up.client.post("/v1/documents/confirm-deletes", headers=up.headers(acme_admin))
        assert confirmed.status_code == 200
        assert confirmed.json() == {"tenant": "acme", "confirmed": 4}
        deleted = {*(f"tenants/acme/doc{n}.txt" for n in range(1, 5)), "tenants/globex/doc0.txt"}

        def settled() -> bool:  # a confirmed delete is queued, then processing, then deleted
            records = up.records()
            return {k for k, r in records.items() if r.status == DocStatus.DELETED} == deleted

        up.wait_for(settled, 60, "confirmed deletes did not happen")
        assert _indexed(up, "acme") == 2
        after = up.client.get("/v1/status", headers=up.headers(acme_admin)).json()
        assert after["held_deletes"] == 0
    finally:
        up.stop()
