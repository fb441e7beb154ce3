"""`rag state`: the schema of each store of the state database (RAG_STATE_URL, or the data dir's
SQLite files), as an operator checks it before and after an upgrade.

Registered in cli/main.py with `app.add_typer(state_app, name="state")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from core.settings import get_settings

if TYPE_CHECKING:
    from core.settings import Settings

state_app = typer.Typer(help="The state database's stores and their schemas.", no_args_is_help=True)
console = Console(highlight=False)


@state_app.command("current")
def current() -> None:
    """Each store's schema and the newest this release knows.

    Reads only: a store that is not there yet is shown as none, and nothing is created.
    """
    from core.state.database import store_versions
    from core.state.stores import STORES

    settings = get_settings()
    console.print(f"state: {_where(settings)}", markup=False)
    for store in STORES:
        revision, head = store_versions(settings, store)
        state = "up to date" if revision == head else f"upgrade to {head}"
        console.print(f"{store.name}: {revision or 'none'} ({state})", markup=False)


@state_app.command("upgrade")
def upgrade() -> None:
    """Bring every store's schema up to date now.

    Each process also does it for the stores it opens; running it first lets an operator see
    the upgrade succeed before any service starts on the new release.
    """
    from core.state.database import release, store_engine, store_versions
    from core.state.stores import STORES

    settings = get_settings()
    for store in STORES:
        release(store_engine(settings, store))
        revision, _ = store_versions(settings, store)
        console.print(f"{store.name}: {revision}", markup=False)


@state_app.command("import")
def import_(
    data_dir: Annotated[
        Path, typer.Argument(help="The data dir whose SQLite stores to copy", show_default=False)
    ],
) -> None:
    """Copy a data dir's stores into RAG_STATE_URL's database.

    Documents, pending work, runs, keys, cached vectors, golden sets and evaluations: nothing
    is embedded again. Rows already there are kept, so it can run again, or resume after an
    interruption. The index itself moves with Qdrant's snapshots.
    """
    from core.state.transfer import import_data_dir

    settings = get_settings()
    if settings.state.url is None:
        raise typer.BadParameter("set RAG_STATE_URL to the database to import into")
    if not data_dir.is_dir():
        raise typer.BadParameter(f"{data_dir} is not a folder", param_hint="DATA_DIR")
    console.print(f"importing {data_dir} into {_where(settings)}", markup=False)
    found = False
    for imported in import_data_dir(data_dir, settings):
        found = True
        console.print(
            f"{imported.store}.{imported.table}: {imported.rows} rows, {imported.added} new",
            markup=False,
        )
    if not found:
        raise typer.BadParameter(f"{data_dir} holds no state store", param_hint="DATA_DIR")


def _where(settings: Settings) -> str:
    """The database without its password, or the data dir."""
    from sqlalchemy.engine import make_url

    if settings.state.url is None:
        return f"SQLite files in {settings.data_dir}"
    return make_url(settings.state.url.get_secret_value()).render_as_string(hide_password=True)
