"""A tenant's retrieval metrics are computed on a ranking as deep as their deepest cutoff.

The run used to score the answer's `eval.context_k` chunks (5 by default): recall@50 was recall@5
and precision@10 could never pass 0.5. Here every document of the tenant is relevant to the one
question, so every ranked document is a relevant one: precision@10 must be 1 and recall@50 must
be 1. Real index, real MiniLM, no LLM (RAGAS's non-LLM metrics only).
"""

from __future__ import annotations

import re
from pathlib import Path

from core.embedding import Embedder
from eval.evaluation_store import EvaluationStore
from eval.golden import GoldenItem
from eval.golden_store import GoldenStore
from eval.metrics import METRICS
from eval.tenant import RunConfig
from ingest.bucket import LocalBucket
from serving.evaluation import evaluate_tenant
from serving.platform import Platform
from tests.support.api_env import prepare_runtime
from tests.support.documents import make_text

RIVERS = [
    "Danube", "Rhine", "Elbe", "Loire", "Tagus", "Vistula",
    "Oder", "Seine", "Po", "Rhone", "Ebro", "Meuse",
]  # fmt: skip


def test_precision_at_10_and_recall_at_50_rank_as_deep_as_their_cutoffs(
    tmp_path: Path, embedder: Embedder
) -> None:
    runtime, _ = prepare_runtime(tmp_path, embedder, eval_reports_dir=tmp_path / "reports")
    docs = [f"tenants/rivers/{name.lower()}.txt" for name in RIVERS]
    for name, doc in zip(RIVERS, docs, strict=True):
        (tmp_path / "bucket" / doc).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "bucket" / doc).write_bytes(
            make_text([f"The {name} is a river of Europe that floods in spring."])
        )
    question = "Which European rivers flood in spring?"
    store = GoldenStore.open(runtime.settings)
    try:
        store.put("rivers", [GoldenItem(id="q", question=question, relevant_doc_ids=docs)])
    finally:
        store.close()
    with Platform(runtime) as platform:
        assert platform.ingestion_of(LocalBucket(tmp_path / "bucket")).run().added == len(docs)
        report = evaluate_tenant(platform, "rivers", config=RunConfig("dense")).report
    means = report["retrieval"]["served"]["means"]
    deepest = max(k for _, k in METRICS.values())
    assert set(means) == set(METRICS)
    assert means["precision@10"] == 1.0, means
    assert means["recall@50"] == 1.0 and means["recall@10"] == 10 / len(docs), means
    assert report["search"]["top_k"] == runtime.settings.eval.context_k  # the answer's own
    assert report["search"]["ranking_depth"] >= deepest
    (row,) = report["items"]
    assert len(row["hits"]) == runtime.settings.eval.context_k < len(docs)
    assert sorted(row["ranked_doc_ids"]) == sorted(docs)  # the whole tenant, in 12 chunks
    runs = EvaluationStore.open(runtime.settings)
    try:
        page = runs.page("rivers", report["run_id"]) or ""
    finally:
        runs.close()
    title = re.search(r'alt="(Retrieval metrics[^"]*)"', page)
    assert title and title.group(1) == "Retrieval metrics of the dense search, 50 deep"
