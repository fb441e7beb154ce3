"""`rag eval` (a tenant's run on the served index, or a BEIR benchmark) and `rag eval baseline
accept RUN`.

Exit codes: 0 no regression, 1 a metric regressed against the baseline (the previous run, for a
benchmark), 2 unusable input. `rag eval --tenant T` prints the run id as its last line (the run
is in the state database: `rag eval show RUN --tenant T` prints its report or page), a benchmark
its report folder.
Registered by `cli/main.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.terminal import (
    EXIT_USAGE,
    PLAIN_ERRORS,
    CliError,
    TenantOption,
    cell,
    print_json,
    tenant_name,
)
from core.settings import Settings, default_help, get_settings
from eval.golden import GoldenSetError
from eval.links import ReportLinks

eval_app = typer.Typer(
    help="Evaluate a tenant's golden set or a BEIR dataset.\n\nA tenant's golden set on the "
    "served index (--tenant), or a BEIR benchmark (--dataset), with RAGAS, retrieval metrics and "
    "a regression gate.",
    **PLAIN_ERRORS,
)
baseline_app = typer.Typer(help="The accepted runs a tenant's runs are compared with.")
eval_app.add_typer(baseline_app, name="baseline")
console = Console()
progress_console = Console(stderr=True)
MODES = ("hybrid", "dense", "bm25", "graph")

DatasetOption = Annotated[
    Path | None,
    typer.Option("--dataset", help=f"BEIR-format folder ({default_help('RAG_EVAL_DATASET')})"),
]


def _dataset(path: Path | None) -> Path:
    path = path or get_settings().eval.dataset
    if path is None:
        raise CliError(
            "no dataset: pass --dataset PATH or set RAG_EVAL_DATASET", exit_code=EXIT_USAGE
        )
    missing = [n for n in ("corpus.jsonl", "queries.jsonl") if not (path / n).is_file()]
    if missing:
        raise CliError(
            f"{path} is not a BEIR-format folder: missing {', '.join(missing)}",
            exit_code=EXIT_USAGE,
        )
    return path


@eval_app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    sample: Annotated[
        int | None,
        typer.Option(
            min=1, help=f"Retrieval queries ({default_help('RAG_EVAL_SAMPLE', unset='all')})"
        ),
    ] = None,
    ragas_sample: Annotated[
        int | None,
        typer.Option(
            min=0, help=f"Golden items for RAGAS ({default_help('RAG_EVAL_RAGAS_SAMPLE')})"
        ),
    ] = None,
    golden: Annotated[
        Path | None,
        typer.Option(
            help="Golden set JSONL "
            f"({default_help('RAG_EVAL_GOLDEN', unset='none: from the qrels')})"
        ),
    ] = None,
    reports_dir: Annotated[
        Path | None,
        typer.Option(
            help=f"With --dataset: where its reports go ({default_help('RAG_EVAL_REPORTS_DIR')})"
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the latest unfinished run")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Evaluate this tenant's golden set")
    ] = None,
    mode: Annotated[str, typer.Option(help="With --tenant: " + " | ".join(MODES))] = "hybrid",
    rerank: Annotated[bool, typer.Option("--rerank", help="With --tenant: rerank")] = False,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="With --tenant: a condition as in POST /v1/search"),
    ] = None,
    modes: Annotated[
        str, typer.Option(help="With --dataset: comma-separated, of " + ", ".join(MODES))
    ] = "hybrid,dense,bm25",
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the run (folder or id) and its report as one object"),
    ] = False,
) -> None:
    """Evaluate a tenant (--tenant) or a dataset, write the report, exit 1 on regression."""
    if ctx.invoked_subcommand is not None:
        return
    if tenant is not None:
        if reports_dir is not None:
            raise CliError(
                "--reports-dir is a benchmark's (--dataset): a tenant's runs are kept in the "
                "state database",
                exit_code=EXIT_USAGE,
            )
        _run_tenant(tenant, mode, rerank, filter_ or [], sample or ragas_sample, as_json)
        return
    from eval.pipeline import run_eval
    from serving.platform import Platform

    settings = get_settings()
    path = _dataset(dataset)
    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    if not chosen or any(m not in MODES for m in chosen):
        raise CliError(
            f"--modes takes a comma-separated list of {', '.join(MODES)}", exit_code=EXIT_USAGE
        )

    try:
        outcome = run_eval(
            settings,
            path,
            golden_path=golden or settings.eval.golden,
            sample_size=sample,
            ragas_sample=ragas_sample,
            reports_dir=reports_dir,
            resume=resume,
            platform=Platform,
            modes=chosen,
            progress=_progress,
        )
    except (GoldenSetError, FileNotFoundError, ValueError) as exc:
        raise CliError(f"{exc}", exit_code=EXIT_USAGE) from None
    report = outcome.report
    if as_json:
        print_json({"run_dir": str(outcome.run_dir), "report": report})
        raise typer.Exit(1 if outcome.regression else 0)
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
    ragas = report["ragas"]
    for metric, value in ragas["means"].items():
        console.print(f"ragas ({ragas['mode']} contexts) {metric}: {value:.3f}")
    for note in ragas["notes"]:
        console.print(f"[yellow]{note}")
    ingest = report["ingest"]
    if ingest["failed"]:
        console.print(f"[yellow]{ingest['failed']} document(s) failed to ingest:")
        for doc_id, reason in sorted(ingest["failed_documents"].items()):
            console.print(cell(f"  {doc_id}: {reason}"), style="yellow")
    console.print(f"report: {outcome.run_dir / 'report.html'} ({report['timings']['total']:.0f}s)")
    for d in report["comparison"]["regressions"]:
        console.print(
            f"[red]regression: {d['section']} {d['metric']} {d['previous']:.3f} -> "
            f"{d['current']:.3f} ({d['change'] * 100:+.1f} points)"
        )
    if outcome.regression:
        raise typer.Exit(1)


def _run_tenant(
    tenant: str,
    mode: str,
    rerank: bool,
    raw_filters: list[str],
    sample: int | None,
    as_json: bool = False,
) -> None:
    """In this process when it can open the index; else (another process, `rag up`, holds the
    embedded shard) as a task run by that process's workers."""
    import json

    from core.index import ShardLockedError
    from core.index.lock import ShardLock
    from core.types import InvalidTenantError, TenantScope
    from eval.history import EvalRunError
    from eval.tenant import run_config
    from retrieval.filters import FilterError
    from serving.evaluation import evaluate_tenant
    from serving.platform import Platform

    settings = get_settings()
    try:
        TenantScope(tenant)
        conditions = [json.loads(f) for f in raw_filters]
        config = run_config(settings, mode, rerank, conditions)
        links = ReportLinks.open(settings)  # a short link secret (a ValueError) is refused now
    except (InvalidTenantError, ValueError, TypeError, AttributeError, FilterError) as exc:
        raise CliError(f"{getattr(exc, 'reason', exc)}", exit_code=EXIT_USAGE) from None
    _require_approved_items(settings, tenant)  # before any model loads or hand-off
    try:
        if settings.index.mode == "edge":  # held elsewhere: handed off before any model loads
            ShardLock.check_free(settings.shard_path)
        with Platform.open(settings) as platform:
            outcome = evaluate_tenant(
                platform, tenant, config=config, sample_size=sample, progress=_progress
            )
        run_id, report = outcome.run_id, outcome.report
    except ShardLockedError as exc:
        run_id = _run_in_workers(exc.holder, tenant, mode, rerank, conditions, sample)
        report = _stored_report(settings, tenant, run_id)
    except EvalRunError as exc:
        raise CliError(f"{exc}", exit_code=EXIT_USAGE) from None
    if as_json:
        print_json({"tenant": tenant, "run_id": run_id, "report": report})
        raise typer.Exit(1 if report["regression"] else 0)
    _print_tenant_report(settings, links, tenant, run_id, report)


def _stored_report(settings: Settings, tenant: str, run_id: str) -> dict[str, Any]:
    from eval.evaluation_store import EvaluationStore

    store = EvaluationStore.open(settings)
    try:
        report = store.report(tenant, run_id)
    finally:
        store.close()
    if report is None:
        raise CliError(f"tenant {tenant!r} has no finished run {run_id!r}", exit_code=EXIT_USAGE)
    return report


def _require_approved_items(settings: Settings, tenant: str) -> None:
    """A usage error at once, not after the platform loaded: nothing to evaluate."""
    from eval.golden_store import GoldenStore

    store = GoldenStore.open(settings)
    try:
        approved = store.items(tenant, "approved")
    finally:
        store.close()
    if not approved:
        raise CliError(
            f"tenant {tenant!r} has no approved golden items",
            f"`rag golden import FILE --tenant {tenant}` or "
            f"`rag golden generate --tenant {tenant}` adds some",
            EXIT_USAGE,
        )


def _progress(line: str) -> None:
    """A plain line, whole, so a log file or CI output shows it as a terminal does; on stderr, so
    stdout holds only the results (the run id or report folder last, or `--json`'s object)."""
    progress_console.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)


def _run_in_workers(
    holder: str, tenant: str, mode: str, rerank: bool, conditions: list, sample: int | None
) -> str:
    """Hand the run to the workers of the process that holds the shard (`rag up`) and show its
    progress until it answers. No worker may ever take it (the holder runs none, or they listen
    on another Redis): then fail once RAG_EVAL_WORKER_START_TIMEOUT_SECONDS have passed without
    one starting it, and the task expires unrun."""
    import time

    from kombu.exceptions import OperationalError
    from kombu.utils.url import maybe_sanitize_url
    from redis.exceptions import RedisError

    from core.locks import redis_client
    from workers import names
    from workers.app import create_app
    from workers.deployment import HEADER, heartbeats, serving
    from workers.tasks.evaluation import Ticket

    settings = get_settings()
    bound = settings.eval.worker_start_timeout_seconds
    redis_at = maybe_sanitize_url(settings.redis_url)
    ticket = Ticket.new(settings.data_dir)
    run = {"tenant": tenant, "mode": mode, "rerank": rerank, "filters": conditions}
    redis = redis_client(settings.redis_url)
    try:
        target = serving(settings, heartbeats(redis))
        create_app(settings).send_task(
            names.EVAL_TENANT,
            kwargs={**run, "sample": sample, "ticket": ticket.id},
            queue=target.queue,  # its workers' own: no other deployment's take it
            expires=bound,
            headers={HEADER: target.header()},
        )
        _progress(
            f"the index is held by {holder}: queued the run for its workers at {redis_at}; "
            f"waiting up to {bound:g} s for one to start it"
        )
        deadline = time.monotonic() + bound
        while not ticket.started:
            if time.monotonic() > deadline:
                raise _not_started(holder, redis_at, bound, heartbeats(redis), target.id)
            time.sleep(0.25)
    except (OperationalError, RedisError) as exc:
        raise CliError(
            f"the index is held by {holder}, and no Redis answers at {redis_at} to hand it the "
            f"run ({exc})",
            "start `rag up`, or point RAG_REDIS_URL at the Redis it uses (it logs it at start-up)",
        ) from None
    finally:
        redis.close()
    # Started: a run is bounded by its sample, concurrency and per-item timeout; this is the
    # outer bound.
    limit = settings.eval.timeout_s * max(1, settings.eval.ragas_sample) + 600
    deadline = time.monotonic() + limit
    shown = 0
    try:
        while True:
            answer = ticket.answered()  # before the lines: every line precedes the answer
            lines = ticket.lines()
            for line in lines[shown:]:
                _progress(line)
            shown = len(lines)
            if answer is not None:
                break
            if time.monotonic() > deadline:
                raise CliError(f"the evaluation did not finish within {limit:.0f}s")
            time.sleep(0.5)
    finally:
        ticket.close()
    if "error" in answer:
        raise CliError(f"{answer['error']}", exit_code=EXIT_USAGE)
    return str(answer["run_id"])


def _not_started(
    holder: str, redis_at: str, bound: float, beats: list, deployment: str
) -> CliError:
    """Why no worker started the run: busy workers, or none of this deployment at all."""
    alive = sorted({b.describe() for b in beats if b.deployment.id == deployment})
    if alive:
        return CliError(
            f"no worker started the evaluation within {bound:g} s: the workers of rag up "
            f"({'; '.join(alive)}) are busy with other tasks",
            "try again when they are idle, or raise RAG_EVAL_WORKER_START_TIMEOUT_SECONDS",
        )
    return CliError(
        f"no worker started the evaluation within {bound:g} s: the index is held by {holder}, "
        f"and no worker of it takes tasks from the Redis at {redis_at}",
        "start `rag up` (or `rag worker`) for this data dir, or check RAG_REDIS_URL: it must "
        "name the Redis that rag up uses (rag up logs it at start-up)",
    )


def _print_tenant_report(
    settings: Any, links: ReportLinks, tenant: str, run_id: str, report: dict
) -> None:
    for metric, value in report["ragas"]["means"].items():
        console.print(f"ragas {metric}: {value:.3f}")
    for section in report["retrieval"].values():
        for metric, value in section["means"].items():
            console.print(f"retrieval {metric}: {value:.3f}")
    for note in report["ragas"]["notes"]:
        console.print(f"[yellow]{note}")
    if report["ragas"]["errors"]:
        console.print(f"[yellow]{report['ragas']['errors']} item(s) failed; see the report")
    base_url = f"http://{settings.api.host}:{settings.api.port}"
    # print, not the console: rich would wrap the link at the terminal's width.
    print(f"open in a browser: {links.link(tenant, run_id, base_url)}")
    for d in report["comparison"]["regressions"]:
        console.print(
            f"[red]regression against {report['comparison']['previous_run']}: {d['section']} "
            f"{d['metric']} {d['previous']:.3f} -> {d['current']:.3f} "
            f"({d['change'] * 100:+.1f} points)"
        )
    print(run_id)
    if report["regression"]:
        raise typer.Exit(1)


@baseline_app.command("accept")
def accept(run_id: str, tenant: TenantOption) -> None:
    """Accept a finished run as a baseline.

    Runs compare with the best accepted one.
    """
    from eval.evaluation_store import EvaluationStore
    from eval.history import EvalRunError, accept_baseline

    name = tenant_name(tenant)
    store = EvaluationStore.open(get_settings())
    try:
        accept_baseline(store, name, run_id)
    except EvalRunError as exc:
        raise CliError(f"{exc}", exit_code=EXIT_USAGE) from None
    finally:
        store.close()
    console.print(f"accepted {run_id} as a baseline of {name}")


@eval_app.command("show")
def show(
    run_id: str,
    tenant: TenantOption,
    html: Annotated[
        Path | None,
        typer.Option("--html", help="Write the report's page to this file instead"),
    ] = None,
) -> None:
    """Print a finished run's report (JSON), or write its HTML page.

    What GET /v1/eval/runs/RUN serves, read from the state database, so from any host sharing
    it; the page is written to a file (to open in a browser), never to the terminal.
    """
    from eval.evaluation_store import EvaluationStore

    name = tenant_name(tenant)
    store = EvaluationStore.open(get_settings())
    try:
        shown = store.page(name, run_id) if html else store.report(name, run_id)
    finally:
        store.close()
    if shown is None:
        raise CliError(f"tenant {name!r} has no finished run {run_id!r}", exit_code=EXIT_USAGE)
    if html is None:
        print_json(shown)
        return
    try:
        html.write_text(shown, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {html}: {exc.strerror}", exit_code=EXIT_USAGE) from None
    console.print(f"wrote the page of {run_id} to {html}", markup=False, highlight=False)
