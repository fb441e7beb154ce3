"""A golden set imported through the API of host A is evaluated by the nightly task of a worker on
host B, and the run's report, its page and a signed link to it open through the API of host C:
three data dirs and reports folders, nothing shared between them but one PostgreSQL database.

Each host is a platform of this process on its own data dir (tests/test_multihost.py puts hosts
in network namespaces). B searches its own index of the corpus: in production the index is a
network service all hosts share, and here only the state is under test.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from core.embedding import Embedder
from core.runtime import Runtime
from serving.platform import Platform
from tests.support.api_env import ADMIN_KEY, prepare_runtime, running_app
from tests.support.services import postgres_url
from workers import context
from workers.tasks.evaluation import nightly_tenant_eval

FOX, HANDBOOK = "tenants/acme/fox.txt", "tenants/acme/shared/handbook.md"
GOLDEN = [
    {"id": "g-fox", "question": "When do red foxes hunt?", "relevant_doc_ids": [FOX]},
    {"id": "g-leave", "question": "How many days of paid leave?", "relevant_doc_ids": [HANDBOOK]},
]


def test_a_run_a_worker_made_on_one_host_opens_through_the_api_of_another(
    tmp_path: Path, embedder: Embedder
) -> None:
    url = postgres_url("evaluations_three_hosts")

    def host(name: str, ingest: bool) -> tuple[Runtime, dict[str, str]]:
        folder = tmp_path / name
        return prepare_runtime(
            folder,
            embedder,
            ingest=ingest,
            state={"url": url},
            eval_reports_dir=folder / "reports",
        )

    runtime_a, keys = host("a", ingest=False)
    with running_app(runtime_a, keys) as a:
        jsonl = "".join(json.dumps(item) + "\n" for item in GOLDEN)
        imported = a.client.post(
            "/v1/golden/import", content=jsonl, headers=a.auth("acme", "admin")
        )
        assert imported.status_code == 200 and imported.json()["imported"] == 2, imported.text

    runtime_b, _ = host("b", ingest=True)
    platform_b = Platform(runtime_b)
    context.install(platform_b)
    try:
        done = nightly_tenant_eval()
    finally:
        context.close()
        platform_b.close()
    assert list(done) == ["acme"], done
    run_id = done["acme"]

    runtime_c, _ = host("c", ingest=False)
    with running_app(runtime_c, keys) as c:  # A's keys, checked on C
        listed = c.client.get("/v1/eval/runs", headers=c.auth("acme")).json()["runs"]
        assert [r["run_id"] for r in listed] == [run_id]
        report = c.client.get(f"/v1/eval/runs/{run_id}", headers=c.auth("acme")).json()
        assert report["run_id"] == run_id and {r["id"] for r in report["items"]} == {
            "g-fox",
            "g-leave",
        }
        assert report["retrieval"]["served"]["means"]["recall@5"] == 1.0
        params = {"format": "html"}
        page = c.client.get(f"/v1/eval/runs/{run_id}", params=params, headers=c.auth("acme"))
        assert page.status_code == 200 and "g-leave" in page.text
        made = c.client.post(f"/v1/eval/runs/{run_id}/link", headers=c.auth("acme"))
        link = urlsplit(made.json()["url"])
        opened = c.client.get(f"{link.path}?{link.query}")  # no key: the signature is enough
        assert opened.status_code == 200 and opened.text == page.text
        metrics = c.client.get("/metrics", headers={"X-API-Key": ADMIN_KEY}).text
        assert (
            'rag_eval_regression{metric="retrieval/served/recall@5",tenant="acme"} 0.0' in metrics
        )
    for name in ("a", "b", "c"):  # nothing of the evaluation is a file on any host
        assert not (tmp_path / name / "reports").exists()
        assert not (tmp_path / name / "data" / "evaluations.sqlite").exists()
        assert not (tmp_path / name / "data" / "eval-requests").exists()
