"""The audit log's bounds: what a client sends is cut and hashed, refusals are rate-limited per
client, and the refusals past the limit are counted in one line when the next minute starts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from api.audit import MAX_LOGGED_CHARS, REFUSAL_WINDOW_SECONDS, AuditLog
from tests.support.audit import read_audit_log


def test_refusals_past_the_limit_are_counted_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [REFUSAL_WINDOW_SECONDS * 1000.0]
    monkeypatch.setattr("api.audit.time.time", lambda: now[0])
    audit = AuditLog(tmp_path / "audit.log", include_queries=False, refusals_per_minute=3)
    for _ in range(10):
        audit.refused(client="10.0.0.1", claimed_key_id="", path="/v1/search")
    audit.refused(client="10.0.0.2", claimed_key_id="abc", path="/v1/search")
    now[0] += REFUSAL_WINDOW_SECONDS  # the next minute: the count of the last one is reported
    audit.refused(client="10.0.0.1", claimed_key_id="", path="/v1/status")
    entries = read_audit_log(tmp_path / "audit.log")
    assert [(e["event"], e["client"]) for e in entries] == [
        *[("auth_refused", "10.0.0.1")] * 3,
        ("auth_refused", "10.0.0.2"),
        ("auth_refused_suppressed", "10.0.0.1"),
        ("auth_refused", "10.0.0.1"),
    ]
    assert entries[4]["suppressed"] == 7 and entries[-1]["path"] == "/v1/status"


def test_long_and_unencodable_text_is_cut_hashed_and_escaped(tmp_path: Path) -> None:
    audit = AuditLog(tmp_path / "audit.log", include_queries=False, refusals_per_minute=20)
    path = "/v1/documents/" + "x" * 10_000
    audit.refused(client="::1", claimed_key_id="", path=path)
    fields = ["meta.\ud800", "m" * 5_000, *[f"meta.k{i}" for i in range(40)]]
    audit.search(
        route="search",
        key_id="k",
        tenant_id="acme",
        query="q\udfff",
        mode="hybrid",
        top_k=3,
        filter_fields=fields,
        status=422,
        hits=0,
    )
    refused, searched = read_audit_log(tmp_path / "audit.log")
    assert len(refused["path"]) <= MAX_LOGGED_CHARS and refused["path_chars"] == len(path)
    assert refused["path"].endswith(hashlib.sha256(path.encode()).hexdigest())
    assert searched["filters"][0] == "meta.\ud800"  # escaped on disk, read back as sent
    assert len(searched["filters"][1]) <= MAX_LOGGED_CHARS
    assert len(searched["filters"]) == 16 and searched["filter_count"] == 42
    assert (tmp_path / "audit.log").stat().st_size < 3_000
