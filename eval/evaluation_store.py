"""Each tenant's evaluation runs in the state database (by default `data_dir/evaluations.sqlite`):
their reports (JSON and HTML page), the accepted baselines, and the items a run has scored, so
that a run one host's worker made is read, linked and resumed through any other.

A run is `running` from its start, with its scored items stored as they settle, and `finished`
once its report and page are written, in one statement: a report is never seen half-written, and
a run a crash cut short is continued by the next run of its tenant that resumes.

A data dir of a release that kept these in `reports_dir/tenants/<tenant>/` (a folder per run with
`report.json` and `report.html`, or `run.json` and `items/` while unfinished, and
`baseline.json`) is imported once, by the first `EvaluationStore.open` that finds the folder:
rows already in the store are left as they are (so an import cut short is simply repeated), and
a file `tenants/IMPORTED` then says the folders were moved and are no longer read.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Double, Engine, MetaData, Table, Text, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.settings import Settings
from core.state.database import insert_new, reading, release, store_engine, upsert
from core.state.stores import EVALUATIONS
from core.types import InvalidTenantError, TenantScope

log = logging.getLogger(__name__)

_METADATA = MetaData()
_RUNS = Table(
    "eval_runs",
    _METADATA,
    Column("tenant", Text, primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("status", Text, nullable=False),  # running | finished
    Column("started_at", Double, nullable=False),
    Column("finished_at", Double),
    Column("report", Text),
    Column("page", Text),
)
_BASELINES = Table(
    "eval_baselines",
    _METADATA,
    Column("tenant", Text, primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("accepted_at", Double, nullable=False),
)
_ITEMS = Table(
    "eval_items",
    _METADATA,
    Column("tenant", Text, primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("item_id", Text, primary_key=True),
    Column("result", Text, nullable=False),
)
# What `new_run_id` makes (a UTC second, and a suffix when that second is taken): any other text
# names no run, and is never sent to the database (PostgreSQL refuses a NUL in a parameter).
RUN_ID = re.compile(r"\d{8}T\d{6}Z(-\d+)?")
IMPORTED = "IMPORTED"


def is_run_id(run_id: str) -> bool:
    return RUN_ID.fullmatch(run_id) is not None


class EvaluationStore:
    """Runs, reports, baselines and scored items per tenant; every call names its tenant."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @classmethod
    def open(cls, settings: Settings) -> EvaluationStore:
        """The store, with the report folders of an earlier release in `eval.reports_dir`
        imported (once, see the module docstring)."""
        store = cls(store_engine(settings, EVALUATIONS))
        try:
            FolderImport(store, settings.eval.reports_dir).run()
        except BaseException:
            store.close()
            raise
        return store

    # Runs.

    def start_run(self, tenant: str, resume: bool) -> str:
        """The tenant's latest unfinished run when resuming, else a new one; its run id."""
        TenantScope(tenant)
        if resume:
            runs = _RUNS.c
            query = (
                select(runs.run_id)
                .where(runs.tenant == tenant, runs.status == "running")
                .order_by(runs.run_id.desc())
                .limit(1)
            )
            with reading(self._engine) as conn:
                unfinished = conn.execute(query).scalar()
            if unfinished is not None:
                return unfinished
        stamp, n = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"), 0
        while True:
            run_id = stamp if n == 0 else f"{stamp}-{n}"
            row = {"tenant": tenant, "run_id": run_id, "status": "running"}
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(_RUNS), [{**row, "started_at": time.time()}])
                return run_id
            except IntegrityError:  # another run of this tenant started in the same second
                n += 1

    def finish_run(self, tenant: str, run_id: str, report: dict[str, Any], page: str) -> None:
        """The run's report and page, stored at once: from now on it is a finished run."""
        runs = _RUNS.c
        values = {
            "status": "finished",
            "finished_at": time.time(),
            "report": json.dumps(report, ensure_ascii=False),
            # A NUL (a question may hold one) is what a browser shows for it, and PostgreSQL
            # stores no NUL in text.
            "page": page.replace("\x00", "\ufffd"),
        }
        query = update(_RUNS).where(runs.tenant == tenant, runs.run_id == run_id).values(values)
        with self._engine.begin() as conn:
            if conn.execute(query).rowcount != 1:
                raise LookupError(f"tenant {tenant!r} has no run {run_id!r}")

    def report(self, tenant: str, run_id: str) -> dict[str, Any] | None:
        """A finished run's report, or None (no such run of this tenant, or unfinished)."""
        text = self._finished(_RUNS.c.report, tenant, run_id)
        return json.loads(text) if text is not None else None

    def page(self, tenant: str, run_id: str) -> str | None:
        """A finished run's HTML page, or None."""
        return self._finished(_RUNS.c.page, tenant, run_id)

    def is_finished(self, tenant: str, run_id: str) -> bool:
        return self._finished(_RUNS.c.run_id, tenant, run_id) is not None

    def _finished(self, column: Column, tenant: str, run_id: str) -> Any:
        TenantScope(tenant)
        if not is_run_id(run_id):
            return None
        runs = _RUNS.c
        query = select(column).where(
            runs.tenant == tenant, runs.run_id == run_id, runs.status == "finished"
        )
        with reading(self._engine) as conn:
            return conn.execute(query).scalar()

    def finished_reports(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's finished reports, oldest first."""
        TenantScope(tenant)
        runs = _RUNS.c
        query = (
            select(runs.report)
            .where(runs.tenant == tenant, runs.status == "finished")
            .order_by(runs.run_id)
        )
        with reading(self._engine) as conn:
            return [json.loads(text) for (text,) in conn.execute(query)]

    def latest_reports(self) -> dict[str, dict[str, Any]]:
        """Every tenant's latest finished report, by tenant."""
        runs = _RUNS.c
        finished = runs.status == "finished"
        latest = (
            select(runs.tenant, func.max(runs.run_id).label("run_id"))
            .where(finished)
            .group_by(runs.tenant)
            .subquery()
        )
        query = (
            select(runs.tenant, runs.report)
            .join(latest, (runs.tenant == latest.c.tenant) & (runs.run_id == latest.c.run_id))
            .order_by(runs.tenant)
        )
        with reading(self._engine) as conn:
            return {tenant: json.loads(text) for tenant, text in conn.execute(query)}

    # Baselines.

    def accept(self, tenant: str, run_id: str) -> bool:
        """Accept a finished run as a baseline (again: it becomes the latest accepted); False
        when the tenant has no such finished run."""
        if not self.is_finished(tenant, run_id):
            return False
        row = {"tenant": tenant, "run_id": run_id, "accepted_at": time.time()}
        with self._engine.begin() as conn:
            upsert(conn, _BASELINES, [row])
        return True

    def accepted_runs(self, tenant: str) -> list[str]:
        """The tenant's accepted runs, in the order they were (last) accepted."""
        TenantScope(tenant)
        baselines = _BASELINES.c
        query = (
            select(baselines.run_id)
            .where(baselines.tenant == tenant)
            .order_by(baselines.accepted_at, baselines.run_id)
        )
        with reading(self._engine) as conn:
            return [run_id for (run_id,) in conn.execute(query)]

    # Scored items.

    def items_of(self, tenant: str, run_id: str) -> RunItems:
        """The scored items of one run, as the RAGAS scorer's cache (`ItemCache`)."""
        return RunItems(self._engine, tenant, run_id)

    def close(self) -> None:
        release(self._engine)

    # The import of an earlier release's folders.

    def adopt(
        self,
        runs: Sequence[dict[str, Any]],
        items: Sequence[dict[str, Any]] = (),
        baselines: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Rows of an earlier release's folders, each written only where none is stored yet."""
        with self._engine.begin() as conn:
            insert_new(conn, _RUNS, list(runs))
            insert_new(conn, _ITEMS, list(items))
            insert_new(conn, _BASELINES, list(baselines))


class RunItems:
    """One run's scored items by item id: what a resumed run does not score again."""

    def __init__(self, engine: Engine, tenant: str, run_id: str) -> None:
        self._engine = engine
        self._key = {"tenant": tenant, "run_id": run_id}

    def get(self, item_id: str) -> str | None:
        items = _ITEMS.c
        query = select(items.result).where(
            items.tenant == self._key["tenant"],
            items.run_id == self._key["run_id"],
            items.item_id == item_id,
        )
        with reading(self._engine) as conn:
            return conn.execute(query).scalar()

    def put(self, item_id: str, result: str) -> None:
        with self._engine.begin() as conn:
            upsert(conn, _ITEMS, [{**self._key, "item_id": item_id, "result": result}])


class FolderImport:
    """An earlier release's `reports_dir/tenants/` moved into the store, once (module
    docstring). Folders that are no tenant's or no run's are left out; a report that cannot be
    read is logged and left out, the rest imported."""

    def __init__(self, store: EvaluationStore, reports_dir: Path) -> None:
        self._store = store
        self._root = reports_dir / "tenants"

    def run(self) -> None:
        if not self._root.is_dir() or (self._root / IMPORTED).exists():
            return
        imported = 0
        for tenant, folder in self._tenants():
            runs, items = self._runs(tenant, folder)
            self._store.adopt(runs, items, self._baselines(tenant, folder))
            imported += len(runs)
        try:
            (self._root / IMPORTED).write_text(
                "The runs below were imported into the state database (the evaluations store) "
                "and are no longer read.\n",
                encoding="utf-8",
            )
        except OSError as exc:  # read-only: imported again by the next open, which is harmless
            log.warning("could not mark %s as imported: %s", self._root, exc)
        log.info(
            "imported %d evaluation runs from %s into the state database", imported, self._root
        )

    def _tenants(self) -> Iterator[tuple[str, Path]]:
        for folder in sorted(self._root.iterdir()):
            try:
                TenantScope(folder.name)
            except InvalidTenantError:
                continue
            if folder.is_dir():
                yield folder.name, folder

    def _runs(self, tenant: str, folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        runs: list[dict[str, Any]] = []
        items: list[dict[str, Any]] = []
        for run in sorted(p for p in folder.iterdir() if p.is_dir() and is_run_id(p.name)):
            row = {"tenant": tenant, "run_id": run.name, "finished_at": None}
            try:
                row["started_at"] = _started_at(run)
                if (run / "report.json").is_file():
                    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
                    page = (run / "report.html").read_text(encoding="utf-8")
                    finished = (run / "report.json").stat().st_mtime
                    runs.append(
                        {
                            **row,
                            "status": "finished",
                            "finished_at": finished,
                            "report": json.dumps(report, ensure_ascii=False),
                            "page": page.replace("\x00", "\ufffd"),
                        }
                    )
                    continue
                scored = [_scored_item(p) for p in sorted((run / "items").glob("*.json"))]
            except (OSError, ValueError) as exc:
                log.warning("evaluation run %s left out of the import: %s", run, exc)
                continue
            runs.append({**row, "status": "running", "report": None, "page": None})
            items += [
                {"tenant": tenant, "run_id": run.name, "item_id": item_id, "result": text}
                for item_id, text in scored
                if item_id is not None
            ]
        return runs, items

    def _baselines(self, tenant: str, folder: Path) -> list[dict[str, Any]]:
        path = folder / "baseline.json"
        try:
            accepted = json.loads(path.read_text(encoding="utf-8"))["accepted"]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the baselines in %s were left out of the import: %s", path, exc)
            return []
        now = time.time()
        return [  # in their order: the last accepted last
            {"tenant": tenant, "run_id": run_id, "accepted_at": now + n / 1000}
            for n, run_id in enumerate(accepted)
            if isinstance(run_id, str)
        ]


def _started_at(run: Path) -> float:
    """When an earlier release's run started: its run.json says so (a benchmark's folder or an
    old one may have none: its folder's time)."""
    try:
        return float(json.loads((run / "run.json").read_text(encoding="utf-8"))["started_at"])
    except (FileNotFoundError, KeyError, TypeError):
        return run.stat().st_mtime


def _scored_item(path: Path) -> tuple[str | None, str]:
    """(item id, the cached result as written) of an earlier release's `items/<hash>.json`; no
    id where the file is not one (that item is scored again)."""
    text = path.read_text(encoding="utf-8")
    try:
        item_id = json.loads(text).get("id")
    except (ValueError, AttributeError):
        return None, text
    return (item_id if isinstance(item_id, str) else None), text
