"""`rag golden`: a tenant's golden set, imported, exported, generated and reviewed (registered by
cli/main.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.terminal import (
    EXIT_USAGE,
    PLAIN_ERRORS,
    CliError,
    TenantOption,
    tenant_name,
)
from core.settings import get_settings
from eval.golden import GoldenSetError

golden_app = typer.Typer(
    help="A tenant's golden set: import, export, generate, review.", **PLAIN_ERRORS
)
console = Console()


def _golden_store():
    from eval.golden_store import GoldenStore

    return GoldenStore.open(get_settings())


@golden_app.command("import")
def golden_import(file: Path, tenant: TenantOption) -> None:
    """Add or replace items from a JSONL file.

    One item a line; a bad line writes nothing.
    """
    from eval.golden import load_golden

    name = tenant_name(tenant)
    try:
        items = load_golden(file)
    except (GoldenSetError, OSError) as exc:
        raise CliError(f"{exc}", exit_code=EXIT_USAGE) from None
    store = _golden_store()
    try:
        console.print(f"imported {store.put(name, items)} golden items into {name}")
    finally:
        store.close()


@golden_app.command("export")
def golden_export(
    tenant: TenantOption,
    review: Annotated[str | None, typer.Option(help="Only pending or approved items")] = None,
) -> None:
    """Print the tenant's golden set as JSONL."""
    from eval.golden import to_jsonl

    store = _golden_store()
    try:
        print(to_jsonl(store.items(tenant_name(tenant), review)), end="")  # type: ignore[arg-type]
    finally:
        store.close()


@golden_app.command("list")
def golden_list(
    tenant: TenantOption,
    review: Annotated[str | None, typer.Option(help="Only pending or approved items")] = None,
) -> None:
    """List the items with their review state."""
    store = _golden_store()
    try:
        items = store.items(tenant_name(tenant), review)  # type: ignore[arg-type]
    finally:
        store.close()
    table = Table(title=f"{len(items)} golden items")
    for col in ("id", "review", "question", "relevant"):
        table.add_column(col)
    for i in items:
        table.add_row(i.id, i.review, i.question[:100], ", ".join(i.relevant_doc_ids))
    console.print(table)


@golden_app.command("approve")
def golden_approve(ids: list[str], tenant: TenantOption) -> None:
    """Approve pending items: runs use approved ones."""
    _golden_change(tenant, ids, {"review": "approved"})


@golden_app.command("edit")
def golden_edit(
    item_id: str,
    tenant: TenantOption,
    question: Annotated[str | None, typer.Option()] = None,
    reference: Annotated[str | None, typer.Option()] = None,
    relevant: Annotated[list[str] | None, typer.Option(help="Relevant doc id (repeatable)")] = None,
) -> None:
    """Change an item's question, reference or documents."""
    changes = {"question": question, "reference": reference, "relevant_doc_ids": relevant}
    _golden_change(tenant, [item_id], {k: v for k, v in changes.items() if v is not None})


def _golden_change(tenant: str, ids: list[str], changes: dict[str, object]) -> None:
    from pydantic import ValidationError

    name = tenant_name(tenant)
    store = _golden_store()
    try:
        for item_id in ids:
            if store.update(name, item_id, changes) is None:
                raise CliError(f"{name} has no golden item {item_id!r}")
    except ValidationError as exc:
        raise CliError(f"{exc.errors()[0]['msg']}", exit_code=EXIT_USAGE) from None
    finally:
        store.close()
    console.print(f"updated {len(ids)} item(s)")


@golden_app.command("delete")
def golden_delete(ids: list[str], tenant: TenantOption) -> None:
    """Delete items by id; exit 1 if one was not found."""
    store = _golden_store()
    try:
        deleted = store.delete(tenant_name(tenant), ids)
    finally:
        store.close()
    console.print(f"deleted {deleted} item(s)")
    if deleted < len(ids):
        raise typer.Exit(1)


@golden_app.command("generate")
def golden_generate(
    tenant: TenantOption,
    n: Annotated[int, typer.Option("-n", min=1, help="Candidates to write")] = 20,
) -> None:
    """Have the LLM write candidates from indexed chunks.

    Questions and reference answers on a sample of the tenant's chunks by the configured LLM,
    stored as pending for review.
    """
    from eval.golden_store import generate_candidates
    from eval.llm import chat_question_writer
    from serving.platform import Platform

    settings = get_settings()
    name = tenant_name(tenant)
    with Platform.open(settings) as platform:
        if platform.llm is None:
            raise CliError(
                "no LLM is configured; set RAG_LLM_BASE_URL (and RAG_LLM_MODEL)",
                exit_code=EXIT_USAGE,
            )
        items = generate_candidates(
            platform.runtime.index,
            name,
            n,
            chat_question_writer(platform.llm),
            settings.eval.concurrency,
            settings.eval.timeout_s,
        )
    store = _golden_store()
    try:
        store.put(name, items)
    finally:
        store.close()
    console.print(
        f"wrote {len(items)} pending candidates for {name}; review with `rag golden list`"
    )
