"""Ranking metrics over graded judgements, as BEIR and trec_eval define them.

`run` maps a query id to its ranked document ids (best first, no duplicates); `qrels` maps a query
id to graded relevance per document (> 0 is relevant). Queries without any relevant document are
skipped, as trec_eval does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

Run = Mapping[str, Sequence[str]]
Qrels = Mapping[str, Mapping[str, int]]


def _judged(qrels: Qrels) -> list[str]:
    return [q for q, judged in qrels.items() if any(g > 0 for g in judged.values())]


def ndcg_at(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    """Per-query nDCG@k with gain = grade and log2(rank + 1) discount."""
    scores = {}
    for q in _judged(qrels):
        grades = qrels[q]
        ranked = run.get(q, [])[:k]
        dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
        ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        scores[q] = dcg / idcg
    return scores


def recall_at(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    scores = {}
    for q in _judged(qrels):
        relevant = {d for d, g in qrels[q].items() if g > 0}
        scores[q] = len(relevant & set(run.get(q, [])[:k])) / len(relevant)
    return scores


def precision_at(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    scores = {}
    for q in _judged(qrels):
        relevant = {d for d, g in qrels[q].items() if g > 0}
        scores[q] = len(relevant & set(run.get(q, [])[:k])) / k
    return scores


def mrr_at(run: Run, qrels: Qrels, k: int) -> dict[str, float]:
    scores = {}
    for q in _judged(qrels):
        relevant = {d for d, g in qrels[q].items() if g > 0}
        ranked = run.get(q, [])[:k]
        scores[q] = next((1 / (i + 1) for i, d in enumerate(ranked) if d in relevant), 0.0)
    return scores


def mean(per_query: Mapping[str, float]) -> float:
    return sum(per_query.values()) / len(per_query) if per_query else 0.0


# Every metric a report carries, by name: (per-query function, cutoff). Recall@50 needs systems to
# return at least 50 documents.
METRICS: dict[str, tuple[Callable[[Run, Qrels, int], dict[str, float]], int]] = {
    "ndcg@10": (ndcg_at, 10),
    "recall@2": (recall_at, 2),  # the multi-hop literature's figure
    "recall@5": (recall_at, 5),
    "recall@10": (recall_at, 10),
    "recall@50": (recall_at, 50),
    "mrr@10": (mrr_at, 10),
    "precision@5": (precision_at, 5),
    "precision@10": (precision_at, 10),
}
MAX_CUTOFF = max(k for _, k in METRICS.values())


def score_run(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Per-query values of every metric in METRICS: metric name -> query id -> value."""
    return {name: fn(run, qrels, k) for name, (fn, k) in METRICS.items()}
