"""One ONNX export per machine: every data dir reuses it, and processes racing to make it make it
once, whole.

Before, exports lived in RAG_DATA_DIR/onnx, so each fresh data dir (a new deployment, the
evaluation workspace, a test's or a bench's scratch dir) paid the export again: 17 s of a
`rag ingest` of 300 SciFact abstracts. The `rag` processes here run as a user would run them:
no RAG_ONNX_EXPORT_DIR, so the export goes to the user's cache folder (XDG_CACHE_HOME, a
scratch folder here). They export a one-layer model, which takes a second, not MiniLM's 17.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.embedding import Embedder
from core.onnx_models import InferenceOptions
from core.settings import Settings
from tests.support.models import build_tiny_sentence_model

ROOT = Path(__file__).resolve().parent.parent
_RAG = "from cli.main import main; main()"  # `rag`, from this checkout
EXPORTING = "exporting the embedding model"
TEXTS = ["Red foxes hunt small rodents at dawn.", "Arctic foxes turn white in winter. " * 20]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sentence_model(
        Settings().models.embedding_model, tmp_path_factory.mktemp("tiny") / "model"
    )


def _env(cache: Path, data_dir: Path, model: Path) -> dict[str, str]:
    """A user's environment: no RAG_ONNX_EXPORT_DIR (the suite sets one for itself)."""
    env = {k: v for k, v in os.environ.items() if k != "RAG_ONNX_EXPORT_DIR"}
    return env | {
        "PYTHONPATH": str(ROOT),
        "XDG_CACHE_HOME": str(cache),
        "RAG_DATA_DIR": str(data_dir),
        "RAG_EMBEDDING_MODEL": str(model),
        "RAG_RERANKER_MODEL": "example-org/no-such-reranker",  # reported and skipped
    }


def _start_export(cache: Path, data_dir: Path, model: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _RAG, "models", "export"],
        env=_env(cache, data_dir, model),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(run: subprocess.Popen[str]) -> tuple[Path, str]:
    """The export the run reports, and what it wrote to stderr."""
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, out + err
    printed = "".join(out.split("\n"))  # rich wraps long paths
    start = printed.index("embedder ")
    graph = printed[start:].split(": ", 1)[1].split("cross-encoder", 1)[0].strip()
    return Path(graph), err


def _exports(cache: Path) -> list[Path]:
    return sorted((cache / "ragplatform" / "onnx").glob("embedder-*"))


def test_the_export_cache_defaults_to_the_users_cache_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAG_ONNX_EXPORT_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    shared = tmp_path / "xdg" / "ragplatform" / "onnx"
    assert Settings(data_dir=tmp_path / "a").models.onnx_export_dir == shared
    assert Settings(data_dir=tmp_path / "b").models.onnx_export_dir == shared
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # not absolute: ignored, as XDG says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "ragplatform" / "onnx"
    assert Settings().models.onnx_export_dir == expected
    monkeypatch.setenv("RAG_ONNX_EXPORT_DIR", str(tmp_path / "mine"))
    assert Settings().models.onnx_export_dir == tmp_path / "mine"


def test_a_first_export_says_so_in_one_line_and_nothing_of_the_tracers(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Finding 8 of issue 24: the first `make run` printed a screenful of torch's TracerWarnings,
    a weight-loading progress bar and an exporter's UserWarning."""
    cache = tmp_path / "cache"
    _, err = _finish(_start_export(cache, tmp_path / "data", tiny_model))
    lines = err.strip().splitlines()
    assert len(lines) == 1 and EXPORTING in lines[0] and str(cache) in lines[0], err


def test_a_second_data_dir_reuses_the_export(tiny_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, _ = _finish(_start_export(cache, tmp_path / "data-1", tiny_model))
    assert _exports(cache) == [first.parent]
    made = first.stat().st_mtime_ns, first.stat().st_ino

    second, err = _finish(_start_export(cache, tmp_path / "data-2", tiny_model))
    assert second == first and (first.stat().st_mtime_ns, first.stat().st_ino) == made
    assert EXPORTING not in err, err
    assert _exports(cache) == [first.parent]
    assert not (tmp_path / "data-1" / "onnx").exists()
    assert not (tmp_path / "data-2" / "onnx").exists()


def test_processes_exporting_at_once_make_one_whole_export(
    tiny_model: Path, tmp_path: Path
) -> None:
    """Both wait on the cache's lock, held here until they do: one exports, the other finds the
    export whole, and both report the same one."""
    cache = tmp_path / "cache"
    lock_path = cache / "ragplatform" / "onnx" / ".lock"
    lock_path.parent.mkdir(parents=True)
    runs: list[subprocess.Popen[str]] = []
    try:
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            runs = [_start_export(cache, tmp_path / f"data-{n}", tiny_model) for n in (1, 2)]
            deadline = time.monotonic() + 240
            while _waiting_on(lock_path) < 2:
                assert all(r.poll() is None for r in runs), [r.communicate() for r in runs]
                assert time.monotonic() < deadline, "the two did not both wait on the cache's lock"
                time.sleep(0.2)
        (first, first_err), (second, second_err) = (_finish(r) for r in runs)
    finally:
        for r in runs:
            if r.poll() is None:
                r.kill()
                r.wait()

    assert first == second
    assert _exports(cache) == [first.parent]
    assert sorted(p.name for p in first.parent.parent.iterdir()) == [".lock", first.parent.name]
    assert f"{first_err}{second_err}".count(EXPORTING) == 1, first_err + second_err
    meta = json.loads((first.parent / "meta.json").read_text())
    assert hashlib.sha256(first.read_bytes()).hexdigest() == meta["graph_sha256"]
    options = InferenceOptions("onnx", 2, None, first.parent.parent)
    onnx = Embedder(str(tiny_model), 4, inference=options)
    assert onnx.backend == "onnx", onnx.fallback_reason
    reference = Embedder(str(tiny_model), 4).embed_documents(TEXTS)
    assert float((onnx.embed_documents(TEXTS) * reference).sum(axis=1).min()) >= 0.9999


def _waiting_on(path: Path) -> int:
    """Processes blocked on the flock of `path`, as the kernel lists them (/proc/locks)."""
    inode = f":{path.stat().st_ino} "
    return sum(
        1 for line in Path("/proc/locks").read_text().splitlines() if "->" in line and inode in line
    )
