"""The nightly evaluation: every tenant with a golden set, on the served index.

Each run goes through the served SearchService and answer builder (`serving.evaluation`), so
under `rag up` it runs in the process that holds the shard, and in the distributed mode any worker
runs it against the Qdrant server. A regression is logged at WARNING and kept in the report;
gating belongs to `rag eval`'s exit code, not to a scheduled task. The BEIR benchmark mode
(`RAG_EVAL_DATASET`) still runs nightly when it is set.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import uuid
from pathlib import Path

from celery import shared_task

from workers import names
from workers.context import context

log = logging.getLogger(__name__)


@shared_task(name=names.EVAL_TENANTS)
def nightly_tenant_eval() -> dict[str, str]:
    from serving.evaluation import evaluate_every_tenant

    return evaluate_every_tenant(context().platform)


class Ticket:
    """One run `rag eval --tenant` handed to the workers of `rag up`, as files the two processes
    share under data_dir/eval-requests/: `<ticket>.progress`, a line per step, whose first line
    says a worker started the run, and `<ticket>.json`, the answer (the run's id, or why it
    failed). Host-local by design: a run is handed off only to the process holding this data
    dir's embedded shard, on this host; the run itself, its report and page are in the state
    database."""

    _ID = re.compile(r"[0-9a-f]{32}")

    def __init__(self, data_dir: Path, ticket: str) -> None:
        """`ticket` comes in a task message and names files: 32 hex digits, nothing else."""
        if not self._ID.fullmatch(ticket):
            raise ValueError(f"not a ticket: {ticket!r}")
        self.id = ticket
        folder = data_dir / "eval-requests"
        self._progress = folder / f"{ticket}.progress"
        self._answer = folder / f"{ticket}.json"

    @classmethod
    def new(cls, data_dir: Path) -> Ticket:
        return cls(data_dir, uuid.uuid4().hex)

    # The worker's side.

    def say(self, line: str) -> None:
        self._progress.parent.mkdir(parents=True, exist_ok=True)
        with self._progress.open("a", encoding="utf-8") as out:
            out.write(" ".join(line.split()) + "\n")  # one line, whole: one write

    def answer(self, answer: dict[str, object]) -> None:
        tmp = self._answer.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(answer), encoding="utf-8")
        tmp.replace(self._answer)

    # The waiting command's side.

    @property
    def started(self) -> bool:
        return self._progress.exists()

    def lines(self) -> list[str]:
        """The progress lines written so far (a line still being written is left for later)."""
        try:
            text = self._progress.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return text.split("\n")[:-1]

    def answered(self) -> dict[str, object] | None:
        try:
            return json.loads(self._answer.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def close(self) -> None:
        self._progress.unlink(missing_ok=True)
        self._answer.unlink(missing_ok=True)


@shared_task(name=names.EVAL_TENANT)
def tenant_eval(
    tenant: str,
    mode: str = "hybrid",
    rerank: bool = False,
    filters: list | None = None,
    sample: int | None = None,
    ticket: str | None = None,
) -> dict[str, object]:
    """One tenant's run, for `rag eval --tenant` when `rag up` holds the embedded shard: it runs
    where the index is open, and reports its progress and answer on the `ticket`."""
    from eval.tenant import run_config
    from serving.evaluation import evaluate_tenant

    platform = context().platform
    handoff = Ticket(platform.settings.data_dir, ticket) if ticket is not None else None
    say = handoff.say if handoff is not None else log.info
    say(f"started by a worker (pid {os.getpid()} on {socket.gethostname()})")
    try:
        config = run_config(platform.settings, mode, rerank, filters or [])
        outcome = evaluate_tenant(platform, tenant, config=config, sample_size=sample, progress=say)
        answer = {"run_id": outcome.run_id, "regression": outcome.regression}
    except Exception as exc:
        answer = {"error": f"{type(exc).__name__}: {exc}"}
    if handoff is not None:
        handoff.answer(answer)
    return answer


@shared_task(name=names.EVAL_NIGHTLY)
def nightly_eval() -> str:
    from eval.pipeline import run_nightly
    from serving.platform import Platform

    settings = context().runtime.settings  # the worker's, not a second read of the environment
    return str(run_nightly(settings, Platform))
