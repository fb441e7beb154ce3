"""`rag deletes`: see and confirm the deletes a scan held back (too many of a tenant at once)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from cli.terminal import tenant_id
from core.manifest import Manifest
from core.settings import get_settings
from ingest.held_deletes import confirm_held_deletes, held_deletes

deletes_app = typer.Typer(help="Deletes held back by the scan's guard.", no_args_is_help=True)
console = Console()


@deletes_app.command("held")
def held() -> None:
    """List the deletes held per tenant.

    They stay held until confirmed or their objects return.
    """
    manifest = Manifest.open(get_settings())
    try:
        counts = held_deletes(manifest)
    finally:
        manifest.close()
    if not counts:
        console.print("no deletes are held")
    for tenant, count in sorted(counts.items()):
        console.print(f"{tenant}: {count} deletes held", markup=False)


@deletes_app.command("confirm")
def confirm(
    tenant: Annotated[
        str, typer.Option(parser=tenant_id, help="The tenant whose held deletes to carry out")
    ],
) -> None:
    """Let the next scan carry out a tenant's held deletes."""
    manifest = Manifest.open(get_settings())
    try:
        count = confirm_held_deletes(manifest, tenant)
    finally:
        manifest.close()
    console.print(
        f"{count} held deletes of {tenant} confirmed; the next scan carries them out", markup=False
    )
