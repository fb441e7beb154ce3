"""`rag`: ingest a folder, search it, and see what state every document is in."""

from __future__ import annotations

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
from retrieval.hybrid import Mode

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


@app.command()
def search(
    query: str,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant id; default RAG_DEFAULT_TENANT")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100)] = 10,
    mode: Annotated[str, typer.Option(help="hybrid | dense | bm25")] = "hybrid",
) -> None:
    """Hybrid search (dense + BM25, RRF in the engine) over one tenant's chunks."""
    from retrieval.hybrid import HybridRetriever, RetrievalConfig

    if mode not in ("hybrid", "dense", "bm25"):
        raise typer.BadParameter("mode must be hybrid, dense or bm25")
    mode_: Mode = mode  # type: ignore[assignment]
    with _runtime() as rt:
        s = rt.settings
        retriever = HybridRetriever(
            rt.index, rt.embedder, RetrievalConfig(s.candidates_per_leg, s.rrf_k)
        )
        hits = retriever.retrieve(
            TenantScope(tenant or s.default_tenant), query, top_k, mode_, with_leg_ranks=True
        )
    table = Table(title=f"{len(hits)} hits for {query!r} ({mode})")
    for col in ("#", "score", "ranks", "source", "text"):
        table.add_column(col)
    for i, h in enumerate(hits, start=1):
        ranks = " ".join(f"{k}:{v}" for k, v in h.leg_ranks.items())
        text = " ".join(h.payload["text"].split())[:160]
        table.add_row(str(i), f"{h.score:.4f}", ranks, h.payload["doc_id"], text)
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
    from cli.models import models_app
    from eval.cli import eval_app
    from workers.cli import up, worker

    app.command()(serve)
    app.add_typer(keys_app, name="keys")
    app.command()(up)
    app.command()(worker)
    app.add_typer(eval_app, name="eval")
    app.add_typer(models_app, name="models")


_register_subcommands()


def main() -> None:
    try:
        app()
    except ShardLockedError as exc:
        console.print(f"[red]{exc}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
