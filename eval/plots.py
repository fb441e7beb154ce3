"""Charts for the report, as base64 PNG so the HTML is one self-contained file.

Figures are built with matplotlib's object API (no pyplot state), which renders through Agg and
is safe to call from a worker or an API thread.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

from core.extras import missing_extra

try:
    from matplotlib.figure import Figure
except ModuleNotFoundError as exc:
    raise missing_extra("eval", "the evaluation report's charts", exc) from exc

_STYLES = ("-o", "--s", ":^", "-.d", "-v", "--x")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def grouped_bars(values: Mapping[str, Mapping[str, float]], title: str) -> str:
    """One group of bars per metric, one bar per series (a system, or RAGAS)."""
    series = list(values)
    metrics = list(dict.fromkeys(m for v in values.values() for m in v))
    fig = Figure(figsize=(max(6.0, 1.1 * len(metrics) * max(1, len(series)) ** 0.5 + 2), 3.6))
    ax = fig.subplots()
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        xs = [m + (i - (len(series) - 1) / 2) * width for m in range(len(metrics))]
        heights = [values[name].get(metric, 0.0) for metric in metrics]
        bars = ax.bar(xs, heights, width, label=name)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
    ax.set_xticks(range(len(metrics)), metrics, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if len(series) > 1:
        ax.legend(fontsize=8, ncols=min(4, len(series)))
    return _png(fig)


def trend(runs: Sequence[str], lines: Mapping[str, Sequence[float | None]], title: str) -> str:
    """A line per series over past runs (oldest left); None where a run lacks the series."""
    fig = Figure(figsize=(8.0, 3.4))
    ax = fig.subplots()
    xs = list(range(len(runs)))
    for i, (name, ys) in enumerate(lines.items()):
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None]
        if points:
            ax.plot(*zip(*points, strict=True), _STYLES[i % len(_STYLES)], label=name)
    ax.set_xticks(xs, [r[:15] for r in runs], rotation=30, ha="right", fontsize=7)
    ax.set_xlim(-0.5, max(len(runs) - 0.5, 0.5))
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _png(fig)
