"""Dependencies by use (issue 17): the API, the workers and `rag up` run without the `s3`, `eval`
and `postgres` extras, and a feature that needs one says which to install.

Each check runs in a child process that hides the extras' modules (`tests.support.without_extras`),
as an image built without them would lack them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _without_extras(
    code: str, tmp: Path, *args: str, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_DATA_DIR": str(tmp / "data"), **settings}
    return subprocess.run(
        [sys.executable, "-c", "import tests.support.without_extras\n" + code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_server_and_the_workers_import_without_the_extras(tmp_path: Path) -> None:
    code = """
import sys
import api.app, serving.platform, workers.embedded, workers.tasks.ingestion
import workers.tasks.maintenance, workers.tasks.evaluation, workers.beat, cli.main
from workers.tasks.ingestion import is_transient
assert is_transient(ConnectionError()) and not is_transient(ValueError())
assert not {"boto3", "botocore", "ragas", "matplotlib"} & set(sys.modules)
print("ok")
"""
    done = _without_extras(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_an_s3_bucket_without_the_s3_extra_names_the_extra(tmp_path: Path) -> None:
    done = _without_extras(
        "import sys\nfrom cli.main import main\nsys.argv = ['rag', *sys.argv[1:]]\nmain()",
        tmp_path,
        "ingest",
        RAG_BUCKET_URL="s3://docs/team",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "the bucket s3://docs/team needs the 's3' extra" in done.stderr
    assert "pip install 'ragplatform[s3]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_evaluation_without_the_eval_extra_names_the_extra(tmp_path: Path) -> None:
    code = """
from core.extras import MissingExtraError
for module in ("eval.ragas_scoring", "eval.plots", "serving.evaluation"):
    try:
        __import__(module)
    except MissingExtraError as exc:
        assert "pip install 'ragplatform[eval]'" in str(exc), exc
        print(module, "refused")
"""
    done = _without_extras(code, tmp_path)
    assert done.returncode == 0, done.stderr
    refused = done.stdout.split("\n")
    assert refused[:3] == [
        f"{m} refused" for m in ("eval.ragas_scoring", "eval.plots", "serving.evaluation")
    ]


def test_a_state_database_in_postgres_without_the_extra_names_the_extra(tmp_path: Path) -> None:
    done = _without_extras(
        "import sys\nfrom cli.main import main\nsys.argv = ['rag', *sys.argv[1:]]\nmain()",
        tmp_path,
        "keys",
        "list",
        RAG_STATE_URL="postgresql+psycopg://rag@127.0.0.1:1/rag",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "needs the 'postgres' extra" in done.stderr
    assert "pip install 'ragplatform[postgres]'" in done.stderr
