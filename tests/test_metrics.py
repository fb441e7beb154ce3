"""The ranking metrics against values worked out by hand, and against a recorded ranx run."""

from __future__ import annotations

import math
import random

import pytest

from eval.metrics import METRICS, mean, mrr_at, ndcg_at, precision_at, recall_at, score_run

# q1: graded judgements, relevant documents at ranks 2 (grade 2) and 4 (grade 1).
# q2: one relevant document, nothing retrieved. q3: judged, but nothing relevant: skipped.
# q4: relevant document, query missing from the run: scores 0.
QRELS = {
    "q1": {"a": 2, "b": 1, "c": 0},
    "q2": {"d": 1},
    "q3": {"e": 0},
    "q4": {"f": 1},
}
RUN = {"q1": ["x", "a", "c", "b"], "q2": [], "q3": ["e"]}


def test_ndcg_by_hand() -> None:
    # DCG = 2/log2(3) + 1/log2(5) = 1.2618595 + 0.4306766; IDCG = 2/log2(2) + 1/log2(3).
    scores = ndcg_at(RUN, QRELS, 10)
    assert set(scores) == {"q1", "q2", "q4"}
    assert scores["q1"] == pytest.approx(1.6925361 / 2.6309298, abs=1e-7)
    assert scores["q1"] == pytest.approx(0.6433224, abs=1e-7)
    assert scores["q2"] == scores["q4"] == 0.0
    # The cutoff drops b at rank 4: DCG@3 = 1.2618595.
    assert ndcg_at(RUN, QRELS, 3)["q1"] == pytest.approx(1.2618595 / 2.6309298, abs=1e-7)
    assert mean(scores) == pytest.approx(0.6433224 / 3, abs=1e-7)


def test_recall_precision_mrr_by_hand() -> None:
    assert recall_at(RUN, QRELS, 2) == {"q1": 0.5, "q2": 0.0, "q4": 0.0}
    assert recall_at(RUN, QRELS, 5)["q1"] == 1.0
    # Precision divides by k even when fewer documents came back, as trec_eval does.
    assert precision_at(RUN, QRELS, 2)["q1"] == 0.5
    assert precision_at(RUN, QRELS, 5)["q1"] == pytest.approx(0.4)
    assert precision_at(RUN, QRELS, 10)["q1"] == pytest.approx(0.2)
    assert mrr_at(RUN, QRELS, 10)["q1"] == 0.5
    assert mrr_at(RUN, QRELS, 1)["q1"] == 0.0


def test_perfect_run_scores_one() -> None:
    qrels = {"q": {"a": 1, "b": 2}}
    scores = score_run({"q": ["b", "a"]}, qrels)
    assert set(scores) == set(METRICS)
    assert scores["ndcg@10"]["q"] == pytest.approx(1.0)
    assert scores["mrr@10"]["q"] == scores["recall@5"]["q"] == 1.0
    # The worse order of the same two documents loses nDCG but not recall.
    swapped = score_run({"q": ["a", "b"]}, qrels)
    assert swapped["ndcg@10"]["q"] < 1.0
    assert swapped["recall@5"]["q"] == 1.0


def test_matches_recorded_ranx_values() -> None:
    """Cross-check: ranx 0.3.21 `evaluate(Qrels, Run, ...)` on this seeded data gave these means.

    (ranx itself is not a dependency: its numba compile takes minutes on this machine.)
    """
    rng = random.Random(1)
    qrels = {
        f"q{i}": {f"d{j}": rng.choice([1, 2]) for j in rng.sample(range(40), rng.randint(1, 5))}
        for i in range(30)
    }
    run = {f"q{i}": [f"d{j}" for j in rng.sample(range(40), 30)] for i in range(30)}
    assert math.isclose(mean(ndcg_at(run, qrels, 10)), 0.11014898493921373, abs_tol=1e-12)
    assert math.isclose(mean(recall_at(run, qrels, 5)), 0.12111111111111111, abs_tol=1e-12)
    assert math.isclose(mean(precision_at(run, qrels, 5)), 0.07333333333333335, abs_tol=1e-12)
    assert math.isclose(mean(mrr_at(run, qrels, 10)), 0.14818783068783067, abs_tol=1e-12)
