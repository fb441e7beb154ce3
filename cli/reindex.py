"""`rag reindex`, and the index-generation lines of `rag status`; cli/main.py registers them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from core.model_digest import model_label
from core.settings import default_help, get_settings

if TYPE_CHECKING:
    from ingest.status import StatusReport

console = Console()


def generation_lines(report: StatusReport) -> list[str]:
    """The served generation and a rebuild's progress, one line each."""
    lines = []
    if g := report.generation:
        model = model_label(g["embedding_model"])
        lines.append(
            f"index generation {g['id']}: {model} ({g['dim']}-d), chunks of {g['chunk_size']} "
            f"tokens overlapping {g['chunk_overlap']}"
        )
    if (r := report.rebuild) and not r["switched"]:
        lines.append(
            f"rebuilding to generation {r['target']} ({', '.join(r['changed'])} changed): "
            f"{r['done']}/{r['total']} documents, {r['embedded']} chunks embedded, "
            f"{r['reused']} reused"
        )
    return lines


def reindex(
    path: Annotated[
        Path | None,
        typer.Argument(help=f"Folder to index ({default_help('RAG_BUCKET_URL')})"),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Documents per durable step")] = 256,
) -> None:
    """Rebuild the index for the current configuration.

    The rebuild runs beside the served index, which it replaces once complete. Nothing happens
    when the served generation already matches the configuration. `rag up` starts a rebuild on
    its own when it sees a mismatch; this runs one without it (the embedded shard admits one
    process). Interrupted, it resumes where it stopped.
    """
    from ingest.reindex import needs_rebuild
    from ingest.service import open_bucket
    from serving.platform import Platform

    with Platform.open(get_settings()) as platform:
        rt = platform.runtime
        if not needs_rebuild(rt):
            console.print("the index already matches the configuration; nothing to rebuild")
            return
        rebuild = platform.rebuild(open_bucket(str(path), rt.settings.ingest) if path else None)
        p = rebuild.progress
        console.print(
            f"rebuilding generation {p.served} as {p.target}: {', '.join(p.changed)} changed"
        )
        try:
            with Progress(
                TextColumn("[bold]reindexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            ) as bar:
                task = bar.add_task("reindex", total=None)
                rebuild.run(batch, lambda p: bar.update(task, completed=p.done, total=p.total))
        finally:
            rebuild.close()
    seconds = max(p.seconds, 1e-9)
    console.print(
        f"switched to generation {p.target}: {p.total} documents in {p.seconds:.1f}s "
        f"({p.total / seconds:.1f} documents/s), {p.embedded} chunks embedded, "
        f"{p.reused} reused from the cache"
    )
