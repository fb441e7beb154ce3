"""Tags per query, and metric means per tag value: where a system is weak, not just how much.

Tags come from the data (BEIR query metadata, golden-set tags, the relevant documents' type) plus
two that every dataset has: how many documents are relevant, and how long the query is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from eval.beir import BeirDataset

Tags = dict[str, str]


def _scalar_tags(meta: Mapping[str, object]) -> Tags:
    return {k: str(v) for k, v in meta.items() if isinstance(v, str | int | float | bool)}


def _length_bucket(text: str) -> str:
    words = len(text.split())
    return "≤8 words" if words <= 8 else "9–16 words" if words <= 16 else ">16 words"


def query_tags(dataset: BeirDataset, qid: str, extra: Mapping[str, str] | None = None) -> Tags:
    relevant = [d for d, g in dataset.qrels.get(qid, {}).items() if g > 0]
    corpus = dataset.corpus
    doc_types = {str(corpus[d].metadata.get("doc_type", "txt")) for d in relevant if d in corpus}
    return {
        **_scalar_tags(dataset.query_metadata.get(qid, {})),
        **(extra or {}),
        "relevant docs": str(len(relevant)) if len(relevant) < 3 else "3+",
        "query length": _length_bucket(dataset.queries.get(qid, "")),
        "doc type": ",".join(sorted(doc_types)) or "unknown",
    }


@dataclass(frozen=True)
class SliceRow:
    tag: str
    value: str
    n: int
    means: dict[str, float]  # column (a system or a metric) -> mean over the slice


def slice_means(
    tags: Mapping[str, Tags], columns: Mapping[str, Mapping[str, float]]
) -> list[SliceRow]:
    """One row per (tag, value): the mean of each column over the items carrying that value."""
    groups: dict[tuple[str, str], list[str]] = {}
    for item, item_tags in tags.items():
        for tag, value in item_tags.items():
            groups.setdefault((tag, value), []).append(item)
    rows = []
    for (tag, value), items in sorted(groups.items()):
        means = {}
        for column, values in columns.items():
            present = [values[i] for i in items if i in values]
            if present:
                means[column] = sum(present) / len(present)
        rows.append(SliceRow(tag, value, len(items), means))
    return rows
