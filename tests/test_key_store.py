"""The key store on both state backends (issue 25): a SQLite file in the data dir, and PostgreSQL
(the suite's own cluster), where every host reads the same keys.

Before, keys lived only in `api_keys.sqlite` of one host's data dir: a key minted on host A was
refused on host B, and a key revoked on A kept working on B.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from api.auth import KeyStore
from core.settings import Settings
from core.state.database import MIGRATIONS
from core.types import TenantScope
from tests.support.services import postgres_url
from tests.support.stores import key_store

ROOT = Path(__file__).resolve().parent.parent
ACME, GLOBEX = TenantScope("acme"), TenantScope("globex")


def test_keys_are_minted_verified_listed_and_revoked(state_settings: Settings) -> None:
    store = KeyStore.open(state_settings)
    try:
        reader, info = store.create(ACME, "reader", "ci")
        admin, _ = store.create(GLOBEX, "admin")
        principal = store.verify(reader)
        assert principal is not None and (principal.scope, principal.role) == (ACME, "reader")
        assert store.verify(reader + "x") is None and store.verify("rag_nope_nope") is None
        assert [k.key_id for k in store.list(ACME)] == [info.key_id]
        assert store.tenants() == {"acme", "globex"}
        assert not store.revoke(info.key_id, GLOBEX)  # not globex's key
        assert store.revoke(info.key_id, ACME) and not store.revoke(info.key_id)
        assert store.verify(reader) is None and store.verify(admin) is not None
        assert store.tenants() == {"globex"}
        assert store.list(ACME)[0].revoked_at is not None
    finally:
        store.close()


_HOST = """
import sys
from api.auth import KeyStore
from core.settings import Settings
store = KeyStore.open(Settings(data_dir=sys.argv[1]))
command, value = sys.argv[2], sys.argv[3]
if command == "create":
    print(store.create(__import__("core.types").types.TenantScope(value), "reader")[0])
elif command == "verify":
    print("ok" if store.verify(value) is not None else "refused")
elif command == "revoke":
    print(store.revoke(value.split("_")[1]))
store.close()
"""


def _run_host(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One process of a host with its own data dir, on the shared state database."""
    env = {"PATH": "/usr/bin:/bin", "RAG_STATE_URL": url, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", _HOST, str(data_dir), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _host(data_dir: Path, url: str, *args: str) -> str:
    done = _run_host(data_dir, url, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_key_minted_on_one_host_works_on_another_and_its_revocation_holds_there(
    tmp_path: Path,
) -> None:
    url = postgres_url("keys_two_hosts")
    a, b = tmp_path / "host-a", tmp_path / "host-b"
    key = _host(a, url, "create", "acme")
    assert _host(b, url, "verify", key) == "ok"
    assert _host(a, url, "revoke", key) == "True"
    assert _host(b, url, "verify", key) == "refused"
    assert not (b / "api_keys.sqlite").exists()  # nothing of the keys is kept on the host


def test_hosts_starting_at_once_on_a_new_database_make_its_tables_once(tmp_path: Path) -> None:
    url = postgres_url("keys_started_at_once")
    hosts = [
        subprocess.Popen(
            [sys.executable, "-c", _HOST, str(tmp_path / f"h{n}"), "create", "acme"],
            cwd=ROOT,
            env={"PATH": "/usr/bin:/bin", "RAG_STATE_URL": url, "HF_HUB_OFFLINE": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = [host.communicate(timeout=120) for host in hosts]
    assert [host.returncode for host in hosts] == [0] * 4, results
    store = key_store(url)
    try:
        assert len(store.list()) == 4
    finally:
        store.close()


def test_a_database_a_newer_release_wrote_is_refused_untouched(tmp_path: Path) -> None:
    url = postgres_url("keys_newer_release")
    _host(tmp_path, url, "create", "acme")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version_keys SET version_num = 'keys_9999'"))
    refused = _run_host(tmp_path, url, "verify", "rag_x_y")
    assert refused.returncode != 0 and "newer than this release knows" in refused.stderr
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version_keys")).scalar()
    engine.dispose()
    assert version == "keys_9999"


def test_every_stores_migration_history_has_one_head() -> None:
    for folder in sorted(p for p in MIGRATIONS.iterdir() if (p / "env.py").exists()):
        config = Config()
        config.set_main_option("script_location", str(folder))
        assert len(ScriptDirectory.from_config(config).get_heads()) == 1, folder.name


def test_a_key_store_opens_on_the_settings_database(tmp_path: Path) -> None:
    """Unset, the store is the data dir's SQLite file, as every release before wrote it."""
    store = KeyStore.open(Settings(data_dir=tmp_path))
    try:
        store.create(ACME, "reader")
    finally:
        store.close()
    assert (tmp_path / "api_keys.sqlite").exists()
