"""`rag state`: the schema of each store of the state database (RAG_STATE_URL, or the data dir's
SQLite files), as an operator checks it before and after an upgrade.

Registered in cli/main.py with `app.add_typer(state_app, name="state")`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def _where(settings: Settings) -> str:
    """The database without its password, or the data dir."""
    from sqlalchemy.engine import make_url

    if settings.state.url is None:
        return f"SQLite files in {settings.data_dir}"
    return make_url(settings.state.url.get_secret_value()).render_as_string(hide_password=True)
