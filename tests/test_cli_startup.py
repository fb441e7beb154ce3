"""`rag` answers at once: its commands are registered without importing what they run, and a
usage or configuration error is found before any model or heavy library loads.

Before, `import cli.main` took 2 s on a quiet machine and 9 s on a loaded one (llama-index, the
document formats' libraries, FastAPI and the Celery app, through module-level imports), so every
`rag --help` and every mistyped command waited that long; `rag search` while `rag up` held the
shard loaded the embedding model before it said the shard was taken.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.index.lock import ShardLock
from tests.test_cli import ROOT, one_line_error, rag

# Libraries that take from a tenth of a second to seconds to import: none is needed to list the
# commands, parse their options or report a usage error.
HEAVY = (
    "llama_index",
    "torch",
    "onnxruntime",
    "transformers",
    "ragas",
    "fastapi",
    "celery",
    "qdrant_client",
    "qdrant_edge",
    "bs4",
    "docx",
    "pptx",
    "openpyxl",
    "pypdf",
)
# Registers every command and builds each one's options and help, as `rag ... --help` does.
_PROBE = """
import json, sys
import typer.main
import cli.main
typer.main.get_command(cli.main.app)
import ingest.chunking, ingest.status, ingest.held_deletes
heavy = json.loads(sys.argv[1])
print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} & set(heavy))))
"""


def test_the_commands_and_what_status_reads_import_no_heavy_library() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(probe.stdout) == []


def test_a_held_shard_is_said_before_the_model_loads(tmp_path: Path) -> None:
    """With the model missing, the only error a search can give before loading it is the held
    shard's; loading the model first gave the model's error (and, with a model, took seconds)."""
    lock = ShardLock(tmp_path / "data" / "shard")
    lock.acquire()
    try:
        result = rag(tmp_path, "search", "penguins", RAG_EMBEDDING_MODEL=str(tmp_path / "none"))
    finally:
        lock.release()
    one_line_error(result, 2, "is in use by", "only one process")


def test_a_tenant_without_golden_items_is_said_before_the_model_loads(tmp_path: Path) -> None:
    """`rag eval --tenant T` with nothing to evaluate: at once, with what adds items (it took
    7 s, the platform's load, before)."""
    result = rag(tmp_path, "eval", "--tenant", "acme", RAG_EMBEDDING_MODEL=str(tmp_path / "none"))
    one_line_error(result, 2, "no approved golden items", "rag golden import")


def test_a_model_that_is_not_on_the_machine_is_a_configuration_error(tmp_path: Path) -> None:
    """It was "an unexpected error" (FileNotFoundError, status 1) naming no setting."""
    result = rag(tmp_path, "search", "penguins", RAG_EMBEDDING_MODEL=str(tmp_path / "none"))
    one_line_error(result, 2, "RAG_EMBEDDING_MODEL", "neither a folder nor")
