"""`rag serve` and `rag keys ...`: the API's commands, registered on the main CLI by the lead.

from api.cli import keys_app, serve
app.command()(serve)
app.add_typer(keys_app, name="keys")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from api.auth import ROLES, KeyStore, Role, create_key
from core.settings import get_settings
from core.types import InvalidTenantError, TenantScope

keys_app = typer.Typer(help="API keys: each maps to one tenant and a role.", no_args_is_help=True)
console = Console()


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def serve(
    host: Annotated[str | None, typer.Option(help="Default RAG_API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="Default RAG_API_PORT")] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs); this process owns the index while it runs."""
    from api.server import serve as run

    run(get_settings(), host, port)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Argument(help="The tenant the key reads")],
    role: Annotated[str, typer.Option(help="reader or admin (an operator key)")] = "reader",
    label: Annotated[str, typer.Option(help="A note for whoever lists keys")] = "",
) -> None:
    """Mint a key and print it once; only its hash is stored."""
    if role not in ROLES:
        raise typer.BadParameter(f"role must be one of {', '.join(ROLES)}")
    role_: Role = role  # type: ignore[assignment]
    try:
        key = create_key(get_settings(), tenant, role_, label)
    except InvalidTenantError as exc:
        raise typer.BadParameter(str(exc)) from None
    print(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None) -> None:
    """Keys with their tenant, role and state; never their secrets."""
    store = KeyStore.open(get_settings())
    try:
        keys = store.list(TenantScope(tenant) if tenant else None)
    finally:
        store.close()
    table = Table(title=f"{len(keys)} API keys")
    for col in ("key id", "tenant", "role", "label", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        revoked = _when(k.revoked_at) if k.revoked_at else ""
        table.add_row(k.key_id, k.tenant_id, k.role, k.label, _when(k.created_at), revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    """Revoke a key at once; requests with it get 401 from the next one on."""
    store = KeyStore.open(get_settings())
    try:
        revoked = store.revoke(key_id)
    finally:
        store.close()
    if not revoked:
        console.print(f"[red]no live key {key_id!r}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")
