"""`rag eval` (evaluate, gate on regressions) and `rag eval make-golden` (build a golden set).

Exit codes: 0 no regression, 1 a metric regressed against the previous run, 2 unusable input.
Registered in `cli/main.py` with `app.add_typer(eval_app, name="eval")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.settings import get_settings
from eval.golden import GoldenSetError, save_golden

eval_app = typer.Typer(help="Retrieval metrics and RAGAS on a BEIR-format dataset, with a gate.")
console = Console()

DatasetOption = Annotated[
    Path | None, typer.Option("--dataset", help="BEIR-format folder; default RAG_EVAL_DATASET")
]


def _dataset(path: Path | None) -> Path:
    path = path or get_settings().eval_dataset
    if path is None:
        console.print("[red]no dataset: pass --dataset PATH or set RAG_EVAL_DATASET")
        raise typer.Exit(2)
    missing = [n for n in ("corpus.jsonl", "queries.jsonl") if not (path / n).is_file()]
    if missing:
        console.print(f"[red]{path} is not a BEIR-format folder: missing {', '.join(missing)}")
        raise typer.Exit(2)
    return path


@eval_app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    sample: Annotated[
        int | None, typer.Option(min=1, help="Retrieval queries; default RAG_EVAL_SAMPLE (all)")
    ] = None,
    ragas_sample: Annotated[
        int | None,
        typer.Option(min=0, help="Golden items for RAGAS; default RAG_EVAL_RAGAS_SAMPLE"),
    ] = None,
    golden: Annotated[
        Path | None, typer.Option(help="Golden set JSONL; default from the qrels")
    ] = None,
    reports_dir: Annotated[
        Path | None, typer.Option(help="Where reports go; default RAG_EVAL_REPORTS_DIR")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the latest unfinished run")
    ] = False,
) -> None:
    """Evaluate a dataset, write reports/<timestamp>/report.{html,json}, exit 1 on regression."""
    if ctx.invoked_subcommand is not None:
        return
    from eval.pipeline import run_eval

    settings = get_settings()
    path = _dataset(dataset)
    try:
        with console.status(f"evaluating {path.name}"):
            outcome = run_eval(
                settings,
                path,
                golden_path=golden or settings.eval_golden,
                sample_size=sample,
                ragas_sample=ragas_sample,
                reports_dir=reports_dir,
                resume=resume,
            )
    except (GoldenSetError, FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}")
        raise typer.Exit(2) from None
    report = outcome.report
    table = Table(
        title=f"{report['dataset']['name']}: {report['dataset']['queries_evaluated']} queries"
    )
    metrics = list(next(iter(report["retrieval"].values()))["means"])
    table.add_column("system")
    for m in metrics:  # short headers, so the table fits a terminal
        short = m.replace("recall", "R").replace("precision", "P").replace("ndcg", "nDCG")
        table.add_column(short.replace("mrr", "MRR"), justify="right")
    for name, r in report["retrieval"].items():
        table.add_row(name, *(f"{r['means'][m]:.3f}" for m in metrics))
    console.print(table)
    for metric, value in report["ragas"]["means"].items():
        console.print(f"ragas {metric}: {value:.3f}")
    for note in report["ragas"]["notes"]:
        console.print(f"[yellow]{note}")
    console.print(f"report: {outcome.run_dir / 'report.html'} ({report['timings']['total']:.0f}s)")
    for d in report["comparison"]["regressions"]:
        console.print(
            f"[red]regression: {d['section']} {d['metric']} {d['previous']:.3f} -> "
            f"{d['current']:.3f} ({d['change'] * 100:+.1f} points)"
        )
    if outcome.regression:
        raise typer.Exit(1)


@eval_app.command("make-golden")
def make_golden_cmd(
    out: Annotated[Path, typer.Option(help="Where to write the candidate golden set (JSONL)")],
    dataset: DatasetOption = None,
    n: Annotated[int | None, typer.Option(min=1, help="Items to write; default all/50")] = None,
) -> None:
    """Write candidate golden items: LLM-written questions on sampled chunks when an LLM is
    configured (for review), else the retrieval-only set from the BEIR qrels."""
    from eval.pipeline import make_golden

    items = make_golden(get_settings(), _dataset(dataset), n)
    save_golden(items, out)
    kinds = {i.tags.get("source", "") for i in items}
    console.print(f"wrote {len(items)} golden items ({', '.join(sorted(kinds))}) to {out}")
