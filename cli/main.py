"""`rag`: ingest a folder, search it, and see what state every document is in.

Every command fails like a Unix tool: one line on stderr naming what is wrong and what to do, and
exit status 0 ok, 1 the job failed, 2 usage or configuration error; `rag --debug ...` shows the
traceback instead.
"""

from __future__ import annotations

import sys
import traceback
from enum import StrEnum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.terminal import (
    EXIT_CODES_HELP,
    EXIT_USAGE,
    CliError,
    cell,
    console,
    local_time,
    print_json,
    report,
    require_folder,
    safe,
    tenant_id,
)
from core.settings import default_help, get_settings
from core.types import TenantScope

if TYPE_CHECKING:
    from serving.platform import Platform

app = typer.Typer(
    help="RAG ingestion and hybrid retrieval on Qdrant.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
_debug = False


def _platform() -> Platform:
    """Imported here: loading the composition root pulls in every layer, `rag --help` need not."""
    from serving.platform import Platform

    return Platform.open(get_settings())


def _show_version(value: bool) -> None:
    if value:
        print(f"rag {package_version('ragplatform')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit"
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, show the traceback, not one line")
    ] = False,
) -> None:
    global _debug
    _debug = debug


@app.command()
def ingest(
    path: Annotated[
        Path | None,
        typer.Argument(help=f"Folder to sync ({default_help('RAG_BUCKET_URL')})"),
    ] = None,
) -> None:
    """Sync a folder into the index.

    New and changed documents go in, deleted ones out.
    """
    settings = get_settings()
    url = str(path) if path else settings.ingest.bucket_url
    require_folder(url)  # before any import of ingestion's libraries: a usage error is at once
    from ingest.service import open_bucket

    bucket = open_bucket(url, settings.ingest)
    next(iter(bucket.list()), None)  # no folder, credentials or permission: say so before loading
    with _platform() as platform:
        ingestion = platform.ingestion_of(bucket)
        with console.status("scanning"):
            plan = ingestion.plan()
        with Progress(
            TextColumn("[bold]syncing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("sync", total=plan.total_work)
            summary = ingestion.run(plan, progress=lambda n: bar.advance(task, n))
        with console.status("building the vector index"):
            ingestion.build_vector_index()
    table = Table(title=f"ingest finished in {summary.seconds:.1f}s")
    for name in ("added", "modified", "deleted", "unchanged", "failed", "chunks_embedded"):
        table.add_column(name.replace("_", " "), justify="right")
    table.add_row(
        *(
            str(getattr(summary, n))
            for n in ("added", "modified", "deleted", "unchanged", "failed", "chunks_embedded")
        )
    )
    console.print(table)
    if summary.failed:
        console.print("[yellow]some documents failed; `rag status --failed` shows why")
    for held_tenant, doc_ids in sorted(plan.held.items()):
        console.print(
            f"{held_tenant}: {len(doc_ids)} deletes held (too many at once); "
            f"`rag deletes confirm --tenant {held_tenant}` carries them out",
            markup=False,
            style="yellow",
        )


class SearchModeChoice(StrEnum):
    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"
    graph = "graph"


@app.command()
def search(
    query: str,
    tenant: Annotated[
        str | None,
        typer.Option(parser=tenant_id, help=f"Tenant id ({default_help('RAG_DEFAULT_TENANT')})"),
    ] = None,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k", "-k", min=1, help=f"Hits to return ({default_help('RAG_SEARCH_TOP_K')})"
        ),
    ] = None,
    mode: Annotated[
        SearchModeChoice, typer.Option(help="Which legs rank")
    ] = SearchModeChoice.hybrid,
    filter_: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            help='A condition as in POST /v1/search, e.g. \'{"field": "doc_type", "eq": "pdf"}\' '
            "(repeatable; a JSON list of conditions also works)",
        ),
    ] = None,
    rerank: Annotated[bool, typer.Option("--rerank", help="Rerank the fused hits")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the body POST /v1/search returns")
    ] = False,
) -> None:
    """Search one tenant's chunks, as POST /v1/search does.

    Through the served SearchService, exactly as /v1/search: the same hits, scores and errors.
    """
    import json

    from pydantic import ValidationError

    from api.errors import ApiError
    from api.routes.search import search_or_error, search_response, to_search_request
    from api.schemas import SearchBody

    conditions: list[object] = []
    for raw in filter_ or []:
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise typer.BadParameter(f"not JSON: {raw}", param_hint="--filter") from None
        conditions.extend(parsed if isinstance(parsed, list) else [parsed])
    try:
        body = SearchBody.model_validate(
            {
                "query": query,
                "top_k": top_k,
                "mode": mode.value,
                "filters": conditions,
                "rerank": rerank,
            }
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise typer.BadParameter(f"{where}: {first['msg']}") from None
    with _platform() as platform:
        served = platform.served_search
        try:
            req = to_search_request(body, platform.settings)
            if rerank and not served.reranker.available:  # loads it: only when asked for
                # The API's code, with the operator's reason: what failed to load, what to set.
                reason = safe(served.reranker.reason)
                raise CliError(f"reranker_unavailable (rerank): {reason}", exit_code=EXIT_USAGE)
            scope = TenantScope(tenant if tenant is not None else platform.settings.default_tenant)
            response = search_response(
                body, search_or_error(served.service, served.reranker, scope, req)
            )
        except ApiError as exc:
            field = f" ({exc.field})" if exc.field else ""
            raise CliError(f"{exc.code}{field}: {safe(exc.reason)}", exit_code=EXIT_USAGE) from None
    if as_json:
        print(response.model_dump_json())
        return
    table = Table(title=cell(f"{len(response.results)} hits for {query!r} ({mode.value})"))
    for col in ("#", "score", "source", "text"):
        table.add_column(col)
    for i, hit in enumerate(response.results, start=1):
        score = hit.rerank_score if hit.rerank_score is not None else hit.score
        text = " ".join(hit.text.split())[:160]
        table.add_row(str(i), f"{score:.4f}", cell(hit.doc_id), cell(text))
    console.print(table)


@app.command()
def status(
    tenant: Annotated[str | None, typer.Option(parser=tenant_id, help="Only this tenant")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="List failed documents and why")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON")] = False,
) -> None:
    """Documents per state, the last run and scan, failures.

    Also chunks, the index generation and the vector index's share built, and with --failed
    every failed document with its reason: the numbers and names of /v1/status
    (`ingest.status.status_json`), as the operator sees it.
    """
    from datetime import datetime

    from cli.reindex import generation_lines
    from core.manifest import Manifest
    from ingest.status import RUN_OUTCOMES, read_status, status_json

    manifest = Manifest.open(get_settings())
    try:
        status_report = read_status(manifest, tenant)
    finally:
        manifest.close()
    view = status_json(status_report, operator=True)
    if as_json:
        failures = status_report.failed if failed else []
        listed = [{"doc_id": r.doc_id, "attempts": r.attempts, "error": r.error} for r in failures]
        print_json({**view, "failed": listed})
        return
    table = Table(title=f"documents of tenant {tenant}" if tenant else "documents")
    table.add_column("status")
    table.add_column("count", justify="right")
    for name, count in view["documents"].items():
        table.add_row(name, str(count))
    console.print(table)
    index = view["index"]
    console.print(f"chunks in the index: {view['index_chunks']}")
    for line in generation_lines(status_report):
        console.print(line)
    console.print(
        f"vector index: {index['indexed_chunks']} of {index['chunks']} chunks indexed "
        f"({index['indexed_percent']:g} %, as of its last build)"
    )
    if last := view["last_run"]:
        outcomes = ", ".join(f"{outcome} {last[outcome]}" for outcome in RUN_OUTCOMES)
        started = datetime.fromisoformat(last["started_at"]).timestamp()
        console.print(
            f"last run: {local_time(started)}: {outcomes}; "
            f"{last['chunks_embedded']} chunks embedded, {last['seconds']:.1f}s",
            markup=False,
        )
    if scan := view["last_scan"]:
        scan_table = Table(title="last scan", show_header=False)
        scan_table.add_column("what")
        scan_table.add_column("value", justify="right")
        scan_table.add_row("started", local_time(scan.get("started_at")))
        for name, value in scan.items():
            if name != "started_at":
                scan_table.add_row(cell(name.replace("_", " ")), cell(value))
        console.print(scan_table)
    for held_tenant, count in sorted(status_report.held_deletes.items()):
        console.print(
            cell(
                f"{held_tenant}: {count} deletes held; `rag deletes confirm --tenant {held_tenant}`"
            )
        )
    if failed:
        ftable = Table(title=f"{len(status_report.failed)} failed documents")
        ftable.add_column("document")
        ftable.add_column("attempts", justify="right")
        ftable.add_column("reason")
        for r in status_report.failed:
            ftable.add_row(cell(r.doc_id), str(r.attempts), cell(r.error))
        console.print(ftable)


def _register_subcommands() -> None:
    """Commands owned by the other packages, each kept beside the code it drives."""
    from cli.deletes import deletes_app
    from cli.eval import eval_app
    from cli.golden import golden_app
    from cli.keys import keys_app
    from cli.models import models_app
    from cli.reindex import reindex
    from cli.serve import serve
    from cli.state import state_app
    from cli.workers import up, worker

    app.command()(serve)
    app.add_typer(keys_app, name="keys")
    app.command()(up)
    app.command()(worker)
    app.add_typer(eval_app, name="eval")
    app.add_typer(golden_app, name="golden")
    app.add_typer(deletes_app, name="deletes")
    app.command()(reindex)
    app.add_typer(models_app, name="models")
    app.add_typer(state_app, name="state")
    _add_exit_codes_to_help(app)


def _add_exit_codes_to_help(typer_app: typer.Typer) -> None:
    """Every command's --help ends with the exit statuses it shares with all the others."""
    for command in typer_app.registered_commands:
        command.epilog = command.epilog or EXIT_CODES_HELP
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            group.typer_instance.info.epilog = EXIT_CODES_HELP
            _add_exit_codes_to_help(group.typer_instance)


_register_subcommands()


def main() -> None:
    """The `rag` entry point: runs a command and turns whatever ends it into an exit status."""
    try:
        code = app(standalone_mode=False)
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if _debug:
            traceback.print_exc()
        code = report(exc)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
