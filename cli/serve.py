"""`rag serve`: the REST API in this process (registered by cli/main.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from core.settings import default_help, get_settings


def serve(
    host: Annotated[
        str | None, typer.Option(help=f"Address to listen on ({default_help('RAG_API_HOST')})")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=f"Port to listen on ({default_help('RAG_API_PORT')})")
    ] = None,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs).

    This process owns the index while it runs.
    """
    from api.server import serve as run

    run(get_settings(), host, port)
