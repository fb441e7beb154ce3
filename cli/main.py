"""`rag`: ingest a folder, search it, and see what state every document is in."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.index import ShardLockedError
from core.runtime import Runtime
from core.settings import get_settings
from core.types import TenantScope

app = typer.Typer(help="RAG ingestion and hybrid retrieval on Qdrant.", no_args_is_help=True)
console = Console()


def _runtime() -> Runtime:
    return Runtime(get_settings())


@app.command()
def ingest(
    path: Annotated[
        Path | None, typer.Argument(help="Folder to sync; default RAG_BUCKET_URL")
    ] = None,
) -> None:
    """Sync a folder into the index: new and changed documents in, deleted ones out."""
    from ingest.service import Ingestion, open_bucket

    with _runtime() as rt:
        ingestion = Ingestion(rt, open_bucket(str(path) if path else rt.settings.bucket_url))
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
            rt.index.optimize()
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


class SearchModeChoice(StrEnum):
    hybrid = "hybrid"
    dense = "dense"
    bm25 = "bm25"
    graph = "graph"


@app.command()
def search(
    query: str,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant id; default RAG_DEFAULT_TENANT")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1)] = 10,
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
    """Search one tenant's chunks through the served SearchService, exactly as /v1/search does."""
    import json

    from pydantic import ValidationError

    from api.errors import ApiError
    from api.routes.search import search_or_error, search_response, to_search_request
    from api.schemas import SearchBody
    from serving.search import build_search

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
    with _runtime() as rt:
        served = build_search(rt)
        try:
            req = to_search_request(body, rt.settings)
            scope = TenantScope(tenant or rt.settings.default_tenant)
            response = search_response(
                body, search_or_error(served.service, served.reranker, scope, req)
            )
        except ApiError as exc:
            field = f" ({exc.field})" if exc.field else ""
            console.print(f"[red]{exc.code}{field}: {exc.reason}")
            raise typer.Exit(2) from None
        finally:
            served.close()
    if as_json:
        print(response.model_dump_json())
        return
    table = Table(title=f"{len(response.results)} hits for {query!r} ({mode.value})")
    for col in ("#", "score", "source", "text"):
        table.add_column(col)
    for i, hit in enumerate(response.results, start=1):
        score = hit.rerank_score if hit.rerank_score is not None else hit.score
        text = " ".join(hit.text.split())[:160]
        table.add_row(str(i), f"{score:.4f}", hit.doc_id, text)
    console.print(table)


@app.command()
def status(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="List failed documents and why")] = False,
) -> None:
    """Documents per state, the last run and scan, and failures with their reasons."""
    from core.manifest import Manifest
    from workers.status import read_status

    manifest = Manifest(get_settings().manifest_path)
    report = read_status(manifest, tenant)
    manifest.close()
    table = Table(title="documents")
    table.add_column("status")
    table.add_column("count", justify="right")
    for name, count in report.counts.items():
        table.add_row(name, str(count))
    console.print(table)
    if last := report.last_run:
        console.print(
            f"last run: +{last.added} ~{last.modified} -{last.deleted} ={last.unchanged} "
            f"!{last.failed}, {last.chunks_embedded} chunks embedded, {last.seconds:.1f}s"
        )
    if report.last_scan:
        console.print(f"last scan: {report.last_scan}")
    if failed:
        ftable = Table(title=f"{len(report.failed)} failed documents")
        ftable.add_column("document")
        ftable.add_column("attempts", justify="right")
        ftable.add_column("reason")
        for r in report.failed:
            ftable.add_row(r.doc_id, str(r.attempts), r.error)
        console.print(ftable)


def _register_subcommands() -> None:
    """Commands owned by the other packages, each kept beside the code it drives."""
    from api.cli import keys_app, serve
    from eval.cli import eval_app, golden_app
    from workers.cli import up, worker

    app.command()(serve)
    app.add_typer(keys_app, name="keys")
    app.command()(up)
    app.command()(worker)
    app.add_typer(eval_app, name="eval")
    app.add_typer(golden_app, name="golden")


_register_subcommands()


def main() -> None:
    try:
        app()
    except ShardLockedError as exc:
        console.print(f"[red]{exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
