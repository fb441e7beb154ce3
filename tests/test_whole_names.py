"""Every validated name is matched whole (issue 23, finding 7).

`re.match` with a pattern ending in `$` also accepts the name followed by a newline, since `$`
matches before a final newline: a filter field "meta.year\\n" passed the check and the engine
raised (a 500 in hybrid, dense and BM25), a bucket folder `tenants/acme\\n/` became tenant
"acme\\n", and a sidecar could store the key "tenant_id\\n". Each validator here is given a valid
name, which it takes, and the same name with a newline after it, which it refuses.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer._click.exceptions import BadParameter

from api.auth import InvalidLabelError, check_label
from cli.terminal import tenant_id
from core.manifest import NO_TENANT
from core.settings import Settings
from core.types import InvalidTenantError, TenantScope, is_meta_key, is_tenant_id
from eval.evaluation_store import EvaluationStore
from ingest.documents import DocumentError, parse_sidecar, tenant_id_of, tenant_of
from retrieval.filters import FilterError, to_field_filter
from tests.support.stores import key_store

NEWLINES = ["\n", "\r\n"]


@pytest.mark.parametrize("end", NEWLINES)
def test_a_tenant_id_is_matched_whole(end: str) -> None:
    assert is_tenant_id("acme") and TenantScope("acme").tenant_id == "acme"
    assert not is_tenant_id("acme" + end)
    with pytest.raises(InvalidTenantError, match="invalid tenant id"):
        TenantScope("acme" + end)


@pytest.mark.parametrize("end", NEWLINES)
def test_a_tenant_folder_is_matched_whole(end: str) -> None:
    assert tenant_of("tenants/acme/x.txt", "default") == TenantScope("acme")
    key = f"tenants/acme{end}/x.txt"
    with pytest.raises(DocumentError, match="is not a valid tenant id") as info:
        tenant_of(key, "default")
    assert repr("acme" + end) in info.value.reason  # the folder, escaped
    assert tenant_id_of(key, "default") == NO_TENANT


@pytest.mark.parametrize("end", NEWLINES)
def test_a_tenant_given_to_the_cli_is_matched_whole(end: str) -> None:
    assert tenant_id("acme") == "acme"
    with pytest.raises(BadParameter, match="invalid tenant id"):
        tenant_id("acme" + end)


@pytest.mark.parametrize("end", NEWLINES)
@pytest.mark.parametrize("key", ["year", "tenant_id"])
def test_a_sidecar_key_is_matched_whole(end: str, key: str) -> None:
    if key == "year":
        assert is_meta_key(key) and parse_sidecar(b'{"year": 2021}', 1024) == {"year": 2021}
    assert not is_meta_key(key + end)
    with pytest.raises(DocumentError, match="is not a plain identifier"):
        parse_sidecar(json.dumps({key + end: 1}).encode(), 1024)


@pytest.mark.parametrize("end", NEWLINES)
@pytest.mark.parametrize("field", ["meta.year", "doc_type"])
def test_a_filter_field_is_matched_whole(end: str, field: str) -> None:
    assert to_field_filter(field, {"eq": "x"}, 16).field == field
    with pytest.raises(FilterError, match="unknown filter field") as info:
        to_field_filter(field + end, {"eq": "x"}, 16)
    assert info.value.field == field + end


@pytest.mark.parametrize("end", NEWLINES)
def test_key_ids_labels_and_run_ids_are_matched_whole(tmp_path: Path, end: str) -> None:
    store = key_store(tmp_path / "api_keys.sqlite")
    key, _ = store.create(TenantScope("acme"), "reader", check_label("ops"))
    prefix, key_id, secret = key.split("_", 2)
    assert store.verify(key) is not None
    assert store.verify(f"{prefix}_{key_id}{end}_{secret}") is None
    assert store.verify(key + end) is None
    store.close()
    with pytest.raises(InvalidLabelError):
        check_label("ops" + end)
    runs = EvaluationStore.open(Settings(data_dir=tmp_path, eval_reports_dir=tmp_path / "r"))
    run_id = runs.start_run("acme", resume=False)
    runs.finish_run("acme", run_id, {}, "")
    assert runs.report("acme", run_id) == {}
    assert runs.report("acme", run_id + end) is None
    with pytest.raises(InvalidTenantError):
        runs.report("acme" + end, run_id)
    runs.close()


@pytest.mark.parametrize("end", NEWLINES)
def test_a_key_an_older_release_minted_for_a_tenant_with_a_newline_is_refused(
    tmp_path: Path, end: str
) -> None:
    """Before names were matched whole, `rag keys create "acme\\n"` stored such a key; verifying it
    now raised while building its scope (a 500 for every request that sent it), and the index-size
    gauge of /metrics raised on it too."""
    store = key_store(tmp_path / "api_keys.sqlite")
    key, info = store.create(TenantScope("acme"), "reader")
    with sqlite3.connect(tmp_path / "api_keys.sqlite") as conn:
        conn.execute(
            "UPDATE api_keys SET tenant_id = ? WHERE key_id = ?", ("acme" + end, info.key_id)
        )
    assert store.verify(key) is None
    assert store.tenants() == set()
    store.close()
