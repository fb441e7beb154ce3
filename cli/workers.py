"""`rag up` and `rag worker`; cli/main.py registers them with `app.command()(up)` etc."""

from __future__ import annotations

import os
from typing import Annotated, Literal

import typer

from core.settings import default_help, get_settings
from workers.process import worker_argv


def up(
    api: Annotated[bool, typer.Option(help="Serve the API in this process too")] = True,
) -> None:
    """Run everything in one process: index, API, workers.

    The embedded default: the index, the API, a worker pool and beat in one process. Uses the
    Redis at RAG_REDIS_URL, or starts a local one if none answers.
    """
    from cli.terminal import require_folder

    settings = get_settings()
    require_folder(settings.ingest.bucket_url)
    from workers.embedded import run_up  # after the checks: it imports the whole platform

    run_up(settings, with_api=api)


def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help=f"Tasks run at once ({default_help('RAG_WORKER_CONCURRENCY')})",
        ),
    ] = None,
    beat: Annotated[bool, typer.Option(help="Also run the scheduler (one per deployment)")] = False,
    pool: Annotated[
        Literal["threads", "prefork", "solo"], typer.Option(help="Celery's worker pool")
    ] = "threads",
) -> None:
    """Run a Celery worker (distributed mode).

    `celery -A workers.main worker` with the right queues. Any number may run against a Qdrant
    server (RAG_INDEX_MODE=server, RAG_QDRANT_URL); with the embedded index only one process may
    open it, so use `rag up` instead.
    """
    settings = get_settings()
    threads = concurrency or settings.workers.worker_concurrency
    argv = worker_argv(settings, threads, pool=pool, beat=beat)
    os.execv(argv[0], argv)
