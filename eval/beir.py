"""Read a BEIR-format dataset: corpus.jsonl, queries.jsonl and qrels/<split>.tsv (graded)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BeirDoc:
    id: str
    title: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def content(self) -> str:
        """The document as the evaluation indexes it: title, blank line, text."""
        return f"{self.title}\n\n{self.text}" if self.title else self.text


@dataclass
class BeirDataset:
    name: str
    corpus: dict[str, BeirDoc]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance (> 0 is relevant)
    query_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)  # BEIR's "metadata"

    @property
    def judged_queries(self) -> dict[str, str]:
        """Queries with at least one relevant document in the chosen split."""
        return {
            q: t
            for q, t in self.queries.items()
            if any(g > 0 for g in self.qrels.get(q, {}).values())
        }


def load_beir(root: Path, split: str = "test") -> BeirDataset:
    corpus: dict[str, BeirDoc] = {}
    with (root / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            doc_id = str(row["_id"])
            corpus[doc_id] = BeirDoc(
                doc_id, row.get("title", ""), row["text"], row.get("metadata") or {}
            )
    queries: dict[str, str] = {}
    query_metadata: dict[str, dict[str, Any]] = {}
    with (root / "queries.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
            if row.get("metadata"):
                query_metadata[str(row["_id"])] = row["metadata"]
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)  # header: query-id, corpus-id, score
        for qid, did, score in reader:
            qrels.setdefault(qid, {})[did] = int(score)
    queries = {q: t for q, t in queries.items() if q in qrels}
    query_metadata = {q: m for q, m in query_metadata.items() if q in queries}
    return BeirDataset(root.name, corpus, queries, qrels, query_metadata)
