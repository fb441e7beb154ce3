"""Write a benchmark run's `report.json` and the self-contained `report.html` rendered from it,
and render a tenant run's page (stored with its report, `eval.evaluation_store`).

The HTML is derived from the JSON alone (plus the past reports it already embeds as history), so
what a person reads and what the gate decided on can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from eval.plots import grouped_bars, trend

_RANKED_SHOWN = 10  # of a question's ranked documents, the ones its report lists

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right;vertical-align:top}
th{background:#f4f4f4}td.l,th.l{text-align:left}
.bad{background:#fde2e1;border:1px solid #e0908b;padding:8px 12px}
.ok{background:#e3f6e5;border:1px solid #8bc294;padding:8px 12px}
.note{background:#fff6d6;border:1px solid #e3c96b;padding:8px 12px;margin:6px 0}
.chunk{font-size:12px;color:#444;max-width:760px;text-align:left}
.rel{color:#107a2e;font-weight:bold}.neg{color:#b3261e}
img{max-width:100%}
"""


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> str:
    """Cells are HTML already; the first `left` columns are left-aligned."""

    def cells(tag: str, values: Sequence[str]) -> str:
        return "".join(
            f"<{tag}{' class=l' if i < left else ''}>{v}</{tag}>" for i, v in enumerate(values)
        )

    body = "".join(f"<tr>{cells('td', r)}</tr>" for r in rows)
    return f"<table><tr>{cells('th', [escape(h) for h in header])}</tr>{body}</table>"


def _img(png: str, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{png}">'


def _header(r: Mapping[str, Any]) -> str:
    d, t, c = r["dataset"], r["timings"], r["config"]
    facts = [
        ("dataset", f"{d['name']} ({d['split']}): {d['docs']} docs, {d['queries']} judged queries"),
        ("queries evaluated", str(d["queries_evaluated"])),
        ("golden items (RAGAS)", str(r["ragas"]["n_items"])),
        ("timings", ", ".join(f"{k} {v:.1f}s" for k, v in t.items())),
        ("config", ", ".join(f"{k}={v}" for k, v in c.items())),
    ]
    rows = [[escape(k), escape(v)] for k, v in facts]
    return f"<h1>Evaluation {escape(r['run_id'])}</h1>{_table(['', ''], rows, left=2)}"


def _gate(r: Mapping[str, Any]) -> str:
    comp = r["comparison"]
    if comp["previous_run"] is None:
        return "<p class=ok>First run of this dataset: nothing to compare against.</p>"
    limit = f"{comp['threshold'] * 100:.1f} points"
    if not comp["regressions"]:
        return (
            f"<p class=ok>No regression against {escape(comp['previous_run'])} "
            f"(no metric dropped by more than {limit}).</p>"
        )
    parts = [
        f"<p class=bad><b>REGRESSION</b> against {escape(comp['previous_run'])}: "
        f"{len(comp['regressions'])} metric(s) dropped by more than {limit}.</p>"
    ]
    for d in comp["regressions"]:
        parts.append(
            f"<h3>{escape(d['section'])} {escape(d['metric'])}: {_num(d['previous'])} → "
            f"{_num(d['current'])} ({d['change'] * 100:+.1f} points, {d['n']} shared items)</h3>"
        )
        rows = [[escape(q["id"]), _num(q["previous"]), _num(q["current"])] for q in d["worse"]]
        parts.append(_table(["query", "previous", "current"], rows))
    return "".join(parts)


def _retrieval(r: Mapping[str, Any], title: str) -> str:
    means = {s: run["means"] for s, run in r["retrieval"].items()}
    if not means:
        return ""
    metrics = list(next(iter(means.values())))
    rows = [[escape(s), *(_num(m.get(k)) for k in metrics)] for s, m in means.items()]
    return (
        "<h2>Retrieval</h2>"
        + _img(grouped_bars(means, title), title)
        + _table(["system", *metrics], rows)
    )


def _systems_retrieval(r: Mapping[str, Any]) -> str:
    """A benchmark run ranks with each mode and peer system: one bar per system."""
    return _retrieval(r, "Retrieval metrics per system")


def _served_retrieval(r: Mapping[str, Any]) -> str:
    """A tenant's run ranks with one search, its mode's: the title names it."""
    search = r["search"]
    return _retrieval(
        r, f"Retrieval metrics of the {search['mode']} search, {search['ranking_depth']} deep"
    )


def _ragas(r: Mapping[str, Any]) -> str:
    g = r["ragas"]
    notes = "".join(f"<p class=note>{escape(n)}</p>" for n in g["notes"])
    if g["errors"]:
        notes += (
            f"<p class=note>{g['errors']} item(s) failed (timeout or LLM error); see below.</p>"
        )
    # A benchmark's RAGAS answers from one of its modes; a tenant's run from its one search.
    title = f"RAGAS of the {escape(g['mode'])} search's contexts" if "mode" in g else "RAGAS"
    if not g["means"]:
        return f"<h2>{title}</h2>{notes}<p>No RAGAS metric could be computed.</p>"
    rows = [[escape(m), _num(v), str(len(g["per_item"].get(m, {})))] for m, v in g["means"].items()]
    failed = [[escape(i["id"]), escape(i["error"])] for i in g["items"] if i["error"]]
    return (
        f"<h2>{title} ({'LLM judge' if g['llm_metrics'] else 'non-LLM metrics only'})</h2>{notes}"
        + _img(grouped_bars({"ragas": g["means"]}, "RAGAS metrics"), "ragas bars")
        + _table(["metric", "mean", "items"], rows)
        + (_table(["failed item", "error"], failed, left=2) if failed else "")
    )


def _trend(r: Mapping[str, Any]) -> str:
    history = r["history"]
    runs = [h["run_id"] for h in history]
    systems = list(dict.fromkeys(s for h in history for s in h["retrieval"]))
    lines = {
        f"{s} {metric}": [h["retrieval"].get(s, {}).get(metric) for h in history]
        for metric in ("ndcg@10", "recall@10")
        for s in systems
    }
    parts = ["<h2>Trend over runs</h2>"]
    parts.append(_img(trend(runs, lines, "nDCG@10 and Recall@10 per run"), "retrieval trend"))
    ragas_metrics = list(dict.fromkeys(m for h in history for m in h["ragas"]))
    if ragas_metrics:
        ragas_lines = {m: [h["ragas"].get(m) for h in history] for m in ragas_metrics}
        parts.append(_img(trend(runs, ragas_lines, "RAGAS metrics per run"), "ragas trend"))
    return "".join(parts)


def _deltas(r: Mapping[str, Any]) -> str:
    comp = r["comparison"]
    if comp["previous_run"] is None:
        return ""
    rows = [
        [
            escape(d["section"]),
            escape(d["metric"]),
            _num(d["previous"]),
            _num(d["current"]),
            f"<span class={'neg' if d['change'] < 0 else 'rel'}>{d['change'] * 100:+.1f}</span>",
            str(d["n"]),
        ]
        for d in comp["deltas"]
    ]
    header = ["section", "metric", "previous", "current", "change (points)", "items"]
    return f"<h2>Against {escape(comp['previous_run'])}</h2>{_table(header, rows, left=2)}"


def _slices(r: Mapping[str, Any]) -> str:
    parts = ["<h2>Slices</h2>"]
    for name, rows in r["slices"].items():
        if not rows:
            continue
        columns = list(dict.fromkeys(c for row in rows for c in row["means"]))
        body = [
            [escape(row["tag"]), escape(row["value"]), str(row["n"])]
            + [_num(row["means"].get(c)) for c in columns]
            for row in rows
        ]
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(_table(["tag", "value", "n", *columns], body, left=2))
    return "".join(parts)


def _worst(r: Mapping[str, Any]) -> str:
    if not r["worst"]["queries"]:
        return ""
    parts = [
        f"<h2>Worst {len(r['worst']['queries'])} queries ({escape(r['worst']['system'])}, "
        "by nDCG@10)</h2>"
    ]
    for q in r["worst"]["queries"]:
        relevant = ", ".join(
            f"{escape(d['doc_id'])} ({escape(d['title'][:80])})" for d in q["relevant"]
        )
        rows = [
            [
                str(c["rank"]),
                f"<span class={'rel' if c['relevant'] else 'neg'}>{escape(c['doc_id'])}</span>",
                f"<div class=chunk>{escape(c['text'][:400])}</div>",
            ]
            for c in q["retrieved"]
        ]
        parts.append(
            f"<h3>{escape(q['id'])}: {escape(q['query'])}</h3>"
            f"<p>nDCG@10 {_num(q['ndcg@10'])} · Recall@50 {_num(q['recall@50'])} · "
            f"relevant: {relevant}</p>{_table(['rank', 'doc', 'retrieved chunk'], rows, left=3)}"
        )
    return "".join(parts)


def render_html(report: Mapping[str, Any]) -> str:
    body = "".join(
        part(report)
        for part in (_header, _gate, _systems_retrieval, _ragas, _trend, _deltas, _slices, _worst)
    )
    title = f"Evaluation {report['run_id']} · {report['dataset']['name']}"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )


def write_report(run_dir: Path, report: Mapping[str, Any]) -> Path:
    return _write(run_dir, report, render_html(report))


def _write(run_dir: Path, report: Mapping[str, Any], html: str) -> Path:
    """report.html first, report.json last: a folder with report.json is a finished run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "report.html").write_text(html, encoding="utf-8")
    tmp = run_dir / "report.json.tmp"
    tmp.write_text(json.dumps(report, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(run_dir / "report.json")
    return run_dir / "report.html"


def _tenant_header(r: Mapping[str, Any]) -> str:
    search = r["search"]
    facts = [
        ("tenant", r["tenant"]),
        ("golden items", str(r["ragas"]["n_items"])),
        (
            "search",
            f"mode={search['mode']} rerank={search['rerank']} "
            f"filters={json.dumps(search['filters'])}; the answer gets the top {search['top_k']} "
            f"chunks, the retrieval metrics rank the top {search['ranking_depth']}",
        ),
        ("configuration", ", ".join(f"{k}={v}" for k, v in r["config"].items())),
        ("took", f"{r['seconds']:.1f}s"),
    ]
    rows = [[escape(k), escape(v)] for k, v in facts]
    title = f"Evaluation of {escape(r['tenant'])}: {escape(r['run_id'])}"
    return f"<h1>{title}</h1>{_table(['', ''], rows, left=2)}"


def _tenant_items(r: Mapping[str, Any]) -> str:
    parts = ["<h2>Questions, worst first</h2>"]
    for row in r["items"]:
        scores = " · ".join(f"{escape(m)} {_num(v)}" for m, v in sorted(row["scores"].items()))
        ranked = ", ".join(escape(d) for d in row["ranked_doc_ids"][:_RANKED_SHOWN])
        error = f"<p class=bad>{escape(row['error'])}</p>" if row["error"] else ""
        contexts = [
            [
                str(n),
                escape(hit["doc_id"]),
                _num(hit["score"], 4),
                f"<div class=chunk>{escape(ctx['text'][:400])}</div>",
            ]
            for n, (hit, ctx) in enumerate(zip(row["hits"], row["contexts"], strict=False), 1)
        ]
        parts.append(
            f"<h3>{escape(row['id'])}: {escape(row['question'])}</h3>{error}"
            f"<p>{scores or 'no score'}</p>"
            + (f"<p><b>ranked documents</b>: {ranked}</p>" if ranked else "")
            + f"<p><b>answer</b>: {escape(row['answer'] or '–')}</p>"
            + _table(["rank", "doc", "score", "context"], contexts, left=2)
        )
    return "".join(parts)


def render_tenant_html(report: Mapping[str, Any]) -> str:
    body = "".join(
        part(report)
        for part in (
            _tenant_header,
            _gate,
            _served_retrieval,
            _ragas,
            _trend,
            _deltas,
            _tenant_items,
        )
    )
    title = f"Evaluation {report['run_id']} · {report['tenant']}"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>"
    )
