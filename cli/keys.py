"""`rag keys ...`: API keys, each for one tenant and a role (registered by cli/main.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.terminal import EXIT_USAGE, CliError, cell, console, local_time, print_json, tenant_id
from core.settings import get_settings
from core.types import InvalidTenantError, Role, TenantScope

keys_app = typer.Typer(help="API keys: each maps to one tenant and a role.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Argument(help="The tenant the key reads")],
    role: Annotated[
        Role, typer.Option(help="admin: also manages the tenant's keys, golden set and deletes")
    ] = "reader",
    label: Annotated[str, typer.Option(help="A one-line note for whoever lists keys")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Print the key and its id as JSON")] = (
        False
    ),
    force: Annotated[
        bool, typer.Option("--force", help="Create it even if the tenant has no documents yet")
    ] = False,
) -> None:
    """Mint a key and print it once; only its hash is stored.

    A tenant without documents is refused unless --force is given: the likeliest reason is a
    mistyped tenant, whose key would search nothing and answer every search with no hits.
    """
    # The key store lives beside the API's auth dependencies: imported by the commands that use
    # it, so that `rag --help` does not load FastAPI.
    from api.auth import InvalidLabelError, check_label, create_key, no_documents_reason

    try:
        scope = TenantScope(tenant)
        check_label(label)
    except (InvalidTenantError, InvalidLabelError) as exc:
        raise typer.BadParameter(str(exc)) from None
    if not force and (reason := no_documents_reason(scope.tenant_id, _tenants_with_documents())):
        raise CliError(reason, "pass --force to create a key for it anyway", EXIT_USAGE)
    key = create_key(get_settings(), scope.tenant_id, role, label)
    if as_json:
        key_id = key.split("_")[1]
        print_json({"key": key, "key_id": key_id, "tenant": scope.tenant_id, "role": role})
    else:
        print(key)


def _tenants_with_documents() -> list[str]:
    """As the manifest lists them; none before a sync has made it (and asking does not make it)."""
    from core.manifest import Manifest
    from core.state.stores import MANIFEST

    settings = get_settings()
    if settings.state.url is None and not (settings.data_dir / MANIFEST.sqlite_file).exists():
        return []
    manifest = Manifest.open(settings)
    try:
        return manifest.tenants()
    finally:
        manifest.close()


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(parser=tenant_id, help="Only this tenant")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the keys as JSON")] = False,
) -> None:
    """Keys with their tenant, role and state; never their secrets."""
    from api.auth import KeyStore

    scope = TenantScope(tenant) if tenant is not None else None
    store = KeyStore.open(get_settings())
    try:
        keys = store.list(scope)
    finally:
        store.close()
    if as_json:
        print_json(
            [
                {
                    "key_id": k.key_id,
                    "tenant": k.tenant_id,
                    "role": k.role,
                    "label": k.label,
                    "created_at": k.created_at,
                    "revoked_at": k.revoked_at,
                }
                for k in keys
            ]
        )
        return
    table = Table(title=f"{len(keys)} API keys")
    for col in ("key id", "tenant", "role", "label", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            cell(k.key_id),
            cell(k.tenant_id),
            cell(k.role),
            cell(k.label),
            local_time(k.created_at),
            local_time(k.revoked_at),
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once: its next request gets 401."""
    from api.auth import KeyStore

    store = KeyStore.open(get_settings())
    try:
        revoked = store.revoke(key_id)
    finally:
        store.close()
    if not revoked:
        raise CliError(f"no live key {key_id!r}", "`rag keys list` shows the keys")
    console.print(cell(f"revoked {key_id}"))
